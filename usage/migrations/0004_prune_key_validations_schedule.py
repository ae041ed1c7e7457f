"""Created the key-validation pruning job's row; tenants.tasks.BEAT_JOBS declares it now."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("usage", "0003_usagehourly_usagehourly_bucket_idx")]

    operations = []

"""Created the periodic jobs' rows; now each app's tasks module declares its jobs (BEAT_JOBS).

Their rows are created after every migrate (ragllm.beat), found by name where this migration
created them before, so an upgraded database keeps its rows and a fresh one gets them.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = []

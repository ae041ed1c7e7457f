"""Key validation rows: finished ones are forgotten after a while."""

from datetime import timedelta

from django.utils import timezone

from providers.models import LLMFactory
from tenants.models import KeyValidation
from tenants.services.key_validation import key_validation_prune


def test_finished_key_validations_are_pruned_after_30_days(tenant, catalog):
    openai = LLMFactory.objects.get(name="OpenAI")
    old = KeyValidation.objects.create(
        tenant=tenant,
        kind="set_api_key",
        factory=openai,
        state="failed",
        finished_at=timezone.now() - timedelta(days=31),
    )
    recent = KeyValidation.objects.create(
        tenant=tenant,
        kind="set_api_key",
        factory=openai,
        state="succeeded",
        finished_at=timezone.now() - timedelta(days=2),
    )
    running = KeyValidation.objects.create(tenant=tenant, kind="set_api_key", factory=openai)
    assert key_validation_prune(older_than_days=30) == 1
    assert set(KeyValidation.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not KeyValidation.objects.filter(pk=old.pk).exists()

"""The metering drill, small (issue 12): 4 recorder processes, 3 writer processes, one writer
SIGKILLed while it holds a batch, the usage Redis restarted mid-run. Every total equals what
was recorded; nothing is counted twice. (The large drill is in `make bench`.)"""

import pytest
from django.conf import settings
from django.db.models import Count, Sum

from tenants.models import TenantLLM
from tests.usage_drill import run_drill
from usage.models import NO_TOKEN, UsageDaily, UsageEvent, UsageHourly

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="the drill's processes share the database: PostgreSQL",
)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(300)
def test_the_drill_counts_everything_once(tenant, catalog, private_redis, tmp_path):
    from providers.models import LLMFactory

    factory = LLMFactory.objects.get(name="OpenAI")
    configs = [
        TenantLLM.objects.create(
            tenant=tenant, factory=factory, llm_name=f"drill-{i}", model_type="chat"
        )
        for i in range(3)
    ]
    report = run_drill(
        redis_server=private_redis,
        database_url=_database_url(),
        configs=[(c.pk, tenant.pk.hex, c.llm_name) for c in configs],
        workdir=tmp_path,
        per_recorder=1_500,
    )
    recorded = report.recorded
    assert recorded.events == 4 * 1_500
    assert report.killed_pending > 0  # writer 0 died holding entries
    assert report.redis_restarted
    assert report.writer_exit_codes[0] == -9 and report.writer_exit_codes[1:] == [0, 0]

    events = UsageEvent.objects.aggregate(n=Count("pk"), t=Sum("total_tokens"))
    assert (events["n"], events["t"]) == (recorded.events, recorded.tokens)
    for model in (UsageHourly, UsageDaily):
        sums = model.objects.aggregate(calls=Sum("calls"), t=Sum("total_tokens"))
        assert (sums["calls"], sums["t"]) == (recorded.events, recorded.tokens), model
    for config in configs:
        config.refresh_from_db()
        assert config.used_tokens == recorded.per_config[config.pk]
    # Per API token: the rollups and the events agree with what was recorded.
    by_token = dict(
        UsageHourly.objects.values_list("token_id").annotate(t=Sum("total_tokens")).order_by()
    )
    assert by_token == dict(recorded.per_token)
    events_by_token = {
        token or NO_TOKEN: t
        for token, t in UsageEvent.objects.values_list("token_id")
        .annotate(t=Sum("total_tokens"))
        .order_by()
    }
    assert events_by_token == dict(recorded.per_token)

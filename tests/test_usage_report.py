"""`manage.py usage_report`: an aligned table with totals, or CSV; clear errors."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from tenants.models import Tenant
from usage.records import UsageRecord
from usage.selectors.sums import usage_event_totals
from usage.services.ledger import apply_records

MARCH_1 = datetime(2026, 3, 1, 9, tzinfo=UTC)
START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)


def use(tenant, at, *, llm="gpt-4o", factory="OpenAI", prompt=100, completion=20, cost="0.001"):
    return UsageRecord(
        tenant_id=str(tenant.pk),
        factory=factory,
        llm_name=llm,
        model_type="chat",
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=cost,
        created_at=at.timestamp(),
    )


@pytest.fixture
def other(db):
    return Tenant.objects.create(name="Other Co")


@pytest.fixture
def usage(tenant, other):
    apply_records(
        [
            use(tenant, MARCH_1, prompt=1200, completion=300, cost="0.0125"),
            use(tenant, MARCH_1 + timedelta(hours=2), llm="gpt-4o-mini", cost="0.00005"),
            use(tenant, MARCH_1 + timedelta(days=1), llm="claude-3-5-haiku", factory="Anthropic"),
            use(tenant, MARCH_1 + timedelta(days=2), prompt=50_000),  # after --to
            use(other, MARCH_1, prompt=7, completion=0, cost="0.5"),
        ]
    )


def report(*args: str) -> str:
    out = io.StringIO()
    call_command("usage_report", *args, stdout=out)
    return out.getvalue()


def test_it_prints_an_aligned_table_with_a_totals_line(tenant, usage):
    text = report("--tenant", str(tenant.pk), "--from", "2026-03-01", "--to", "2026-03-02")
    lines = text.splitlines()
    assert lines[0] == (
        f"Usage of tenant {tenant.name} ({tenant.pk}), 2026-03-01 to 2026-03-02 (UTC), by day"
    )
    table = lines[2 : lines.index("", 2)]
    header, rule, first, second, _, totals = table
    assert header.split() == [
        "day",
        "calls",
        "errors",
        "prompt",
        "completion",
        "total",
        "tokens",
        "cost",
    ]
    assert first.split() == ["2026-03-01", "2", "0", "1300", "320", "1620", "0.01255000"]
    assert second.split() == ["2026-03-02", "1", "0", "100", "20", "120", "0.00100000"]
    assert totals.split() == ["total", "3", "0", "1400", "340", "1740", "0.01355000"]
    assert len({len(line) for line in (header, rule, first, second, totals)}) == 1  # aligned
    expected = usage_event_totals(tenant=tenant, start=START, end=END)
    assert int(totals.split()[5]) == expected.total_tokens
    assert Decimal(totals.split()[6]) == expected.cost
    assert lines[-1] == "2 row(s); 3 call(s), 1740 token(s), cost 0.01355000."


def test_it_groups_by_model_and_sums_every_tenant_by_default(tenant, other, usage):
    text = report("--from", "2026-03-01", "--to", "2026-03-02", "--group-by", "model")
    assert "Usage of all tenants" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[4:7]}
    assert rows["gpt-4o@OpenAI"][1:4] == ["2", "0", "1207"]  # both tenants' calls
    totals = next(line for line in text.splitlines() if line.startswith("total "))
    everyone = usage_event_totals(tenant=None, start=START, end=END)
    assert totals.split()[-2:] == [str(everyone.total_tokens), f"{everyone.cost:.8f}"]


def test_it_writes_csv_with_a_header_row(tenant, usage):
    text = report(
        "--tenant",
        tenant.name,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
        "--csv",
        "--group-by",
        "factory",
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        [
            "factory",
            "calls",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cost",
        ],
        ["OpenAI", "2", "0", "1300", "320", "1620", "0.01255000"],
        ["Anthropic", "1", "0", "100", "20", "120", "0.00100000"],
    ]


def test_it_finds_a_tenant_by_its_owners_email(tenant, owner, usage):
    text = report("--tenant", owner.email, "--from", "2026-03-01", "--to", "2026-03-01", "--csv")
    assert text.splitlines()[1].startswith("2026-03-01,2,")


def test_it_prints_zero_totals_for_a_period_without_usage(tenant):
    text = report("--tenant", str(tenant.pk), "--from", "2020-01-01", "--to", "2020-01-31")
    assert "0 row(s); 0 call(s), 0 token(s), cost 0.00000000." in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nobody@example.com"], "--tenant: no tenant matches 'nobody@example.com'"),
        (["--from", "March"], "--from: 'March' is neither a date"),
        (["--to", "2026-13-01"], "--to: '2026-13-01' is neither a date"),
        (["--from", "2026-03-05", "--to", "2026-03-01"], "must be before to"),
    ],
)
def test_it_explains_bad_arguments(db, args, message):
    with pytest.raises(CommandError) as error:
        report(*args)
    assert message in str(error.value)


def test_it_has_help_text():
    from usage.management.commands.usage_report import Command

    parser = Command().create_parser("manage.py", "usage_report")
    help_text = parser.format_help()
    for option in ("--tenant", "--from", "--to", "--group-by", "--csv"):
        assert option in help_text

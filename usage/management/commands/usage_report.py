from __future__ import annotations

import io
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from tenants.selectors import tenant_find
from usage.reporting import GROUP_BYS, money, parse_period, write_csv
from usage.selectors.sums import UsageRow, UsageSummary, usage_summary

_COLUMNS = (
    ("calls", "calls"),
    ("errors", "errors"),
    ("prompt_tokens", "prompt"),
    ("completion_tokens", "completion"),
    ("total_tokens", "total tokens"),
    ("cost", "cost"),
)


def _cells(row: UsageRow) -> list[str]:
    return [row.key] + [
        money(row.cost) if name == "cost" else str(getattr(row, name)) for name, _ in _COLUMNS
    ]


def render_table(summary: UsageSummary) -> list[str]:
    """An aligned table: the group left-aligned, numbers right-aligned, then a totals line."""
    header = [summary.group_by] + [title for _, title in _COLUMNS]
    body = [_cells(row) for row in summary.rows]
    totals = _cells(summary.totals)
    widths = [max(len(line[i]) for line in [header, *body, totals]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(header), rule, *(line(cells) for cells in body), rule, line(totals)]


class Command(BaseCommand):
    help = (
        "Print token usage and cost from the rollups (exact, up to date): an aligned "
        "table with a totals line, or CSV with --csv. Default: every tenant, the last 30 UTC "
        "days, grouped by day."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--tenant", default=None, help="Tenant id, owner email or exact name (default: all)."
        )
        parser.add_argument(
            "--from",
            dest="start",
            default=None,
            help="First UTC day, YYYY-MM-DD (default: 30 days before --to).",
        )
        parser.add_argument(
            "--to",
            dest="end",
            default=None,
            help="Last UTC day, YYYY-MM-DD, included (default: today).",
        )
        parser.add_argument(
            "--group-by", choices=GROUP_BYS, default="day", help="Rows per ... (default: day)."
        )
        parser.add_argument(
            "--token", type=int, default=None, help="Only the calls of this API token (its id)."
        )
        parser.add_argument(
            "--csv", action="store_true", help="CSV on stdout (a header row, no totals line)."
        )

    def handle(
        self,
        *args,
        tenant: str | None,
        start: str | None,
        end: str | None,
        group_by: str,
        token: int | None,
        csv: bool,
        **options,
    ) -> None:
        found = None
        if tenant:
            found = tenant_find(ref=tenant)
            if found is None:
                raise CommandError(
                    f"--tenant: no tenant matches {tenant!r} (give its id, its owner's email, "
                    "or its exact name if no other tenant has it)"
                )
        try:
            period = parse_period(start, end)
        except ValueError as exc:
            raise CommandError(f"--{exc}") from exc
        summary = usage_summary(
            tenant=found, start=period.start, end=period.end, group_by=group_by, token=token
        )
        if csv:
            out = io.StringIO()
            write_csv(out, group_by=group_by, rows=summary.rows)
            self.stdout.write(out.getvalue(), ending="")
            return

        last_day = (period.end - timedelta(microseconds=1)).date()
        who = f"tenant {found.name} ({found.pk})" if found else "all tenants"
        self.stdout.write(
            f"Usage of {who}, {period.start:%Y-%m-%d} to {last_day:%Y-%m-%d} (UTC), by {group_by}"
        )
        self.stdout.write("")
        for text in render_table(summary):
            self.stdout.write(text)
        self.stdout.write("")
        totals = summary.totals
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(summary.rows)} row(s); {totals.calls} call(s), {totals.total_tokens} "
                f"token(s), cost {money(totals.cost)}."
            )
        )

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from usage.services.rollups import usage_rollup_daily


class Command(BaseCommand):
    help = "Recompute daily usage rows from the hourly rollups (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--since",
            default=None,
            help="First UTC day to recompute, YYYY-MM-DD (default: yesterday); 'all' for all.",
        )

    def handle(self, *args, since: str | None, **options) -> None:
        start = None
        if since == "all":
            start = date(1970, 1, 1)
        elif since:
            try:
                start = date.fromisoformat(since)
            except ValueError as exc:
                raise CommandError(f"--since: {since!r} is not YYYY-MM-DD or 'all'") from exc
        rows = usage_rollup_daily(since=start)
        self.stdout.write(self.style.SUCCESS(f"{rows} daily row(s) written."))

from django.core.management.base import BaseCommand

from usage.services.events import usage_drain


class Command(BaseCommand):
    help = (
        "Apply every buffered usage event now (the Redis stream, including entries a crashed "
        "writer left pending) and print how many were applied or were already applied."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=30_000,
            help="Take over entries another writer has held unacknowledged this long.",
        )

    def handle(self, *args, claim_idle_ms: int, **options) -> None:
        result = usage_drain(claim_idle_ms=claim_idle_ms)
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.inserted} event(s) applied, {result.duplicates} already applied, "
                f"{result.dropped} dropped (tenant deleted), {result.batches} batch(es)."
            )
        )

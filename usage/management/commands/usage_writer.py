import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError

from usage.buffer import consumer_name, redis_buffer
from usage.services.events import WriterProgress, usage_writer_run


class Command(BaseCommand):
    help = (
        "Run a usage writer: apply the Redis usage stream to the database until SIGTERM or "
        "Ctrl-C (the batch in flight is finished first). Run as many as the load needs, on any "
        "machines: they share the stream's consumer group, and entries a dead writer left "
        "pending are claimed by another after --claim-idle-ms."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=30_000,
            help="Take over entries another writer has held unacknowledged this long "
            "(default 30000; keep it above the longest batch).",
        )
        parser.add_argument(
            "--batch-entries",
            type=int,
            default=10,
            help="Stream entries per transaction (each up to 2,000 records; default 10).",
        )
        parser.add_argument(
            "--consumer", default="", help="Consumer name in the group (default host-pid)."
        )
        parser.add_argument(
            "--progress-seconds",
            type=float,
            default=10.0,
            help="Print a progress line at most this often (0: never).",
        )

    def handle(self, *args, claim_idle_ms, batch_entries, consumer, progress_seconds, **options):
        if redis_buffer() is None:
            raise CommandError("the usage writer needs Redis: set USAGE_REDIS_URL or REDIS_URL")
        if batch_entries < 1 or claim_idle_ms < 0:
            raise CommandError("--batch-entries must be >= 1 and --claim-idle-ms >= 0")
        consumer = consumer or consumer_name()
        stop = threading.Event()

        def request_stop(signum, frame) -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            stop.set()
            self.stdout.write("stopping after the batch in flight...")

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        started = time.monotonic()
        shown = {"at": started, "inserted": 0}

        def on_batch(progress: WriterProgress) -> None:
            now = time.monotonic()
            if progress_seconds <= 0 or now - shown["at"] < progress_seconds:
                return
            done = progress.applied.inserted
            rate = (done - shown["inserted"]) / (now - shown["at"])
            shown.update(at=now, inserted=done)
            self.stdout.write(
                f"{done:,} event(s) applied ({rate:,.0f}/s), "
                f"{progress.applied.duplicates:,} already applied, "
                f"{redis_buffer().backlog():,} stream entries waiting"
            )
            self.stdout.flush()

        self.stdout.write(f"usage writer {consumer} started", ending="\n")
        self.stdout.flush()
        progress = usage_writer_run(
            stop=stop,
            consumer=consumer,
            batch_size=batch_entries,
            claim_idle_ms=claim_idle_ms,
            on_batch=on_batch,
        )
        applied = progress.applied
        self.stdout.write(
            self.style.SUCCESS(
                f"usage writer {consumer} stopped: {applied.inserted:,} event(s) applied, "
                f"{applied.duplicates:,} already applied, {applied.dropped:,} dropped (tenant "
                f"deleted), {applied.batches:,} batch(es), {progress.failures} failed and retried "
                f"in {time.monotonic() - started:.0f} s."
            )
        )

"""`manage.py serve`: the production web server (granian, ASGI) with bounded resources."""

from __future__ import annotations

import os
import shlex
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

APPLICATION = "ragllm.asgi:application"


def granian_argv(*, host: str, port: int) -> list[str]:
    """The granian command line that serves ragllm with the WEB_* settings."""
    argv = [
        sys.executable,
        "-m",
        "granian",
        # ASGI without the lifespan protocol, which Django does not speak.
        "--interface",
        "asginl",
        # uvloop's event loop (granian[uvloop]), said rather than left to "auto".
        "--loop",
        "uvloop",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(settings.WEB_WORKERS),
        # Requests in progress are bounded in ragllm.asgi (WEB_MAX_CONCURRENCY per worker);
        # open connections by granian's backpressure (WEB_MAX_CONNECTIONS per worker).
        "--backpressure",
        str(settings.WEB_MAX_CONNECTIONS),
        "--no-ws",
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "30",
        "--log-level",
        settings.LOG_LEVEL.lower(),
        "--access-log" if settings.WEB_ACCESS_LOG else "--no-access-log",
        # Static files straight from disk by granian, never through Django.
        "--static-path-route",
        "/" + settings.STATIC_URL.strip("/"),
        "--static-path-mount",
        str(settings.STATIC_ROOT),
        APPLICATION,
    ]
    return argv


class Command(BaseCommand):
    help = (
        f"Serve {APPLICATION} (admin, API, gateway) with granian: WEB_WORKERS worker processes, "
        "each taking at most WEB_MAX_CONCURRENCY requests at once, each with a database pool "
        "of at most DB_POOL_MAX_SIZE connections. Runs the system checks and collectstatic "
        "(into STATIC_ROOT, which granian serves at STATIC_URL) first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--print-command",
            action="store_true",
            help="Print the granian command line and exit.",
        )

    def handle(self, *args, host: str, port: int, print_command: bool, **options) -> None:
        argv = granian_argv(host=host, port=port)
        if print_command:
            self.stdout.write(shlex.join(argv))
            return
        # Incremental: unchanged files are skipped, so a restart takes a moment only.
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write(f"Serving on http://{host}:{port}/ : {shlex.join(argv[1:])}")
        self.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)  # noqa: S606 (argv is ours: granian and settings)

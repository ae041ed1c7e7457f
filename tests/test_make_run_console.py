"""What `make run` shows a new user: the login box last and readable, a quiet 5-second drain,
and every broker file under var/."""

import http.server
import io
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from ragllm.logfilters import QuietPeriodicTasks
from tests.usage_helpers import free_port
from usage import tasks
from usage.buffer import DrainResult

DRAIN = "usage.tasks.drain_usage_buffer"


def celery_record(logger: str, msg: str, args, level: int = logging.INFO) -> logging.LogRecord:
    # A mapping is passed as a 1-tuple, as logging.Logger.info(msg, mapping) does.
    return logging.LogRecord(
        logger, level, __file__, 1, msg, (args,) if isinstance(args, dict) else args, None
    )


@pytest.mark.parametrize(
    ("logger", "msg", "args"),
    [
        ("celery.beat", "Scheduler: Sending due task %s (%s)", ("Drain the usage buffer", DRAIN)),
        ("celery.worker.strategy", LOG_RECEIVED, {"name": DRAIN, "id": "1"}),
        (
            "celery.app.trace",
            LOG_SUCCESS,
            {"name": DRAIN, "id": "1", "return_value": "0", "runtime": 0.01},
        ),
    ],
)
def test_celerys_routine_lines_about_the_drain_are_dropped(logger, msg, args):
    record = celery_record(logger, msg, args)
    # The filter is installed on Celery's loggers by our LOGGING setting.
    filters = [f for f in logging.getLogger(logger).filters if isinstance(f, QuietPeriodicTasks)]
    assert filters
    assert not filters[0].filter(record)
    other = celery_record(logger, msg, args if isinstance(args, tuple) else {**args, "name": "x"})
    if isinstance(args, tuple):
        other = celery_record(logger, msg, ("Daily rollup", "usage.tasks.rollup_usage_daily"))
    assert filters[0].filter(other)


def test_a_failing_drain_is_still_logged():
    record = celery_record("celery.app.trace", "Task %(name)s failed", {"name": DRAIN}, 40)
    assert QuietPeriodicTasks().filter(record)


@pytest.mark.parametrize(("inserted", "lines"), [(0, 0), (3, 1)])
def test_the_drain_logs_only_when_it_applied_something(monkeypatch, caplog, inserted, lines):
    monkeypatch.setattr(tasks, "usage_drain", lambda: DrainResult(inserted=inserted))
    with caplog.at_level(logging.DEBUG, logger="usage.tasks"):
        assert tasks.drain_usage_buffer() == inserted
    drained = [r for r in caplog.records if r.name == "usage.tasks"]
    assert len(drained) == lines
    if lines:
        assert "3 event(s) applied" in drained[0].getMessage()


class LoginPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def bootstrap(*args) -> str:
    out = io.StringIO()
    call_command("bootstrap_admin", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def admin_env(monkeypatch):
    monkeypatch.setenv("ADMIN_USERNAME", "boxadmin")
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)


def test_the_login_box_is_printed_once_the_server_answers(db, admin_env):
    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), LoginPage)
    started = threading.Event()

    def serve_later():
        time.sleep(1)  # the command is already polling by now
        started.set()
        server.serve_forever()

    thread = threading.Thread(target=serve_later, daemon=True)
    thread.start()
    try:
        output = bootstrap("--wait-for", f"http://127.0.0.1:{port}")
        assert started.is_set()
    finally:
        server.shutdown()
        thread.join()

    lines = output.strip().splitlines()
    assert lines[0].startswith("+--") and lines[-1].startswith("+--")
    assert f"Admin console: http://127.0.0.1:{port}/admin/" in output
    password = next(line for line in lines if "Password:" in line).split()[2]
    assert get_user_model().objects.get(username="boxadmin").check_password(password)


def test_later_runs_say_how_to_reset_the_password(db, admin_env):
    first = bootstrap()
    second = bootstrap()
    assert "Password:" in first and "make admin-password" not in first
    assert "unchanged" in second
    assert "make admin-password" in second
    assert "bootstrap_admin --reset-password" in second


def test_a_password_reset_prints_a_new_working_password(db, admin_env):
    bootstrap()
    output = bootstrap("--reset-password")
    password = next(line for line in output.splitlines() if "Password:" in line).split()[2]
    assert get_user_model().objects.get(username="boxadmin").check_password(password)


def test_the_filesystem_broker_keeps_every_file_under_var(tmp_path):
    cwd, var = tmp_path / "elsewhere", tmp_path / "var"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update({"DEBUG": "True", "VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var}/x.db"})
    # A queue bound to a fanout exchange (what a worker's remote control does at start-up)
    # is written to the broker's control folder.
    code = (
        f"import sys; sys.path.insert(0, {str(settings.BASE_DIR)!r}); import django; "
        "django.setup(); from kombu import Exchange, Queue; from ragllm.celery import app\n"
        "with app.connection_for_write() as conn:\n"
        "    Queue('q', Exchange('x', type='fanout'), channel=conn.default_channel).declare()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert list(cwd.iterdir()) == []
    assert any((var / "broker" / "control").iterdir())

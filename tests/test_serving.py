"""The production web server: granian serving ragllm.asgi with bounded workers, concurrency and
database connections, static files included. Started for real, as `make run` starts it."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from ragllm.management.commands.serve import granian_argv
from tenants.services.tokens import api_token_issue
from tests.usage_helpers import free_port

WORKERS = 2
POOL_MAX = 3
APP_NAME = "ragllm-live-serving-test"
UNKNOWN_TOKEN = "rgl_deadbeef_" + "A" * 43


class LiveServer:
    """`manage.py serve` in a process of its own, on the test database."""

    def __init__(self, tmp_path: Path, **env_overrides: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            {
                "DEBUG": "False",
                "WEB_WORKERS": str(WORKERS),
                "WEB_MAX_CONCURRENCY": "16",
                "DB_POOL_MAX_SIZE": str(POOL_MAX),
                "DB_POOL_MIN_SIZE": "1",
                "DB_POOL_TIMEOUT": "30",
                "VAR_DIR": str(tmp_path / "var"),
                "STATIC_ROOT": str(tmp_path / "static"),
                "PGAPPNAME": APP_NAME,
                # This test counts connections, not throttling: let every bad token through.
                "API_AUTH_FAILURE_LIMIT": "100000",
                "USAGE_WRITER_THREAD": "False",
            }
        )
        if connection.vendor == "postgresql":
            env["DATABASE_URL"] = _database_url(connection.settings_dict)
        else:
            env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
        if not settings.REDIS_URL:  # share the test process's file cache (invalidation)
            env["CACHE_DIR"] = settings.CACHES["default"]["LOCATION"]
        env.update(env_overrides)
        self.log = tmp_path / "server.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(self.port)],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/admin/login/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server did not answer:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _database_url(db: dict) -> str:
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def _admin_dsn(db: dict) -> str:
    """A connection to the `postgres` database, so that watching adds none to the test db."""
    return re.sub(r"/[^/]*$", "/postgres", _database_url(db)).replace(
        "postgres://", "postgresql://"
    )


@pytest.fixture
def live_server_process(transactional_db, tmp_path):
    server = LiveServer(tmp_path)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


class ConnectionWatcher(threading.Thread):
    """Samples pg_stat_activity for the test database until stopped; keeps the peaks."""

    def __init__(self, db: dict) -> None:
        super().__init__(daemon=True)
        self.dsn = _admin_dsn(db)
        self.name_ = db["NAME"]
        self.peak_total = 0
        self.peak_server = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def counts(self, conn) -> tuple[int, int]:
        return conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE application_name = %s) "
            "FROM pg_stat_activity WHERE datname = %s",
            (APP_NAME, self.name_),
        ).fetchone()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop_event.is_set():
                total, server = self.counts(conn)
                self.peak_total = max(self.peak_total, total)
                self.peak_server = max(self.peak_server, server)
                self.samples += 1
                time.sleep(0.02)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


async def _hammer(url: str, tokens: list[str], *, concurrency: int) -> collections.Counter:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        start = asyncio.Event()

        async def one(token: str) -> int:
            await start.wait()
            response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        tasks = [asyncio.create_task(one(t)) for t in tokens]
        start.set()
        return collections.Counter(await asyncio.gather(*tasks))


def test_the_procfile_and_make_run_serve_asgi_with_granian_never_runserver():
    base = Path(settings.BASE_DIR)
    web = next(
        line for line in (base / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    assert "manage.py serve" in web
    assert (
        "manage.py runserver"
        not in (base / "Procfile").read_text() + (base / "Makefile").read_text()
    )
    argv = granian_argv(host="127.0.0.1", port=8000)
    assert argv[argv.index("--interface") + 1].startswith("asgi")
    assert argv[argv.index("--workers") + 1] == str(settings.WEB_WORKERS)
    assert argv[-1] == "ragllm.asgi:application"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_burst_of_token_requests_stays_within_the_connection_pool(live_server_process, owner):
    if connection.vendor != "postgresql":
        pytest.skip("connection pooling is PostgreSQL's; SQLite has no server connections")
    valid = [api_token_issue(user=owner, name=f"load-{i}")[1] for i in range(3)]
    tokens = [valid[i % 3] if i % 5 == 0 else UNKNOWN_TOKEN for i in range(400)]

    watcher = ConnectionWatcher(connection.settings_dict)
    watcher.start()
    try:
        answers = asyncio.run(
            _hammer(f"{live_server_process.url}/api/v1/llm/my_llms", tokens, concurrency=400)
        )
    finally:
        watcher.stop()

    assert answers == {401: 320, 200: 80}, live_server_process.log.read_text()[-3000:]
    assert watcher.samples > 10
    # The server used its pools, and never more than workers x pool size.
    assert 1 <= watcher.peak_server <= WORKERS * POOL_MAX
    assert "Traceback" not in live_server_process.log.read_text()


def test_the_admin_login_page_and_its_css_load_from_the_live_server(live_server_process):
    page = httpx.get(f"{live_server_process.url}/admin/login/")
    assert page.status_code == 200
    assert 'name="password"' in page.text
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
    assert any(s.endswith("admin/css/base.css") for s in stylesheets), stylesheets
    for href in stylesheets:
        css = httpx.get(f"{live_server_process.url}{href}")
        assert css.status_code == 200, href
        assert css.headers["content-type"].startswith("text/css"), href
        assert len(css.content) > 100
    docs = httpx.get(f"{live_server_process.url}/api/docs/")
    scripts = re.findall(r'src="(/static/[^"]+\.js)"', docs.text)
    assert scripts
    for src in scripts:
        assert httpx.get(f"{live_server_process.url}{src}").status_code == 200, src

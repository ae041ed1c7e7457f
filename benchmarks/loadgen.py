"""The HTTP load generator of the gateway benchmarks: wrk, in a process of its own.

Why wrk (Debian's package, installed by `make bench`): it is C on epoll, so on this 2-core
machine it takes a small slice of a core to drive thousands of requests a second, leaving
the rest to the servers under test; a Python client would need a core of its own to reach
the upstream's own rate and would add its own interpreter time to every latency figure. It
keeps a fixed number of connections busy (closed loop) and reports latency percentiles; a
Lua `done` hook prints the figures this module reads. Non-2xx answers and socket errors are
counted and shown: a figure with failures is marked, never silently kept.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from .common import VAR, NotAvailable
from .targets import Target

BODY = {"messages": [{"role": "user", "content": "Hi"}]}

_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {api_key}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Load:
    connections: int
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def failures(self) -> str:
        if not (self.non_2xx or self.socket_errors):
            return ""
        return f"FAILED: {self.non_2xx} non-2xx, {self.socket_errors} socket errors"


def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise NotAvailable("wrk is not installed (`make bench` installs it: apt-get install wrk)")
    return path


def load(target: Target, *, connections: int, seconds: int) -> Load:
    """Keep `connections` non-streaming chat requests in flight for `seconds`."""
    body = json.dumps({"model": target.model, **BODY})
    VAR.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=VAR) as script:
        script.write(_SCRIPT.format(body=body, api_key=target.api_key))
        script.flush()
        command = [wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
        done = subprocess.run(
            [*command, "-s", script.name, target.chat_url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    for output in done.stdout.splitlines():
        if output.startswith("RESULT "):
            requests, micros, status, socket, p50, p99 = map(int, output.split()[1:])
            return Load(connections, requests, micros / 1e6, status, socket, p50 / 1000, p99 / 1000)
    raise RuntimeError(f"wrk printed no result: {done.stdout[-300:]} {done.stderr[-300:]}")

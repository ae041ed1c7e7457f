"""The Celery application. Broker and schedules come from Django settings (CELERY_*)."""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragllm.settings")

app = Celery("ragllm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

# How long an answer about workers is believed: a worker seen is assumed to stay a while; none
# seen is asked again soon, so a worker that starts is noticed within seconds.
WORKER_SEEN_SECONDS = 15.0
NO_WORKER_SECONDS = 2.0

_seen: dict[str, tuple[float, bool]] = {}
_seen_lock = threading.Lock()


class _Found(Exception):
    pass


def task_queue(task_name: str) -> str:
    """The queue a task sent by name goes to."""
    return app.amqp.router.route({}, task_name)["queue"].name


def worker_available(task_name: str) -> bool:
    """Whether a worker consumes the queue of `task_name`; asked by broadcast, cached briefly.

    Always true when tasks run eagerly, or when the check is turned off
    (KEY_VALIDATION_WORKER_CHECK_SECONDS=0). The broadcast returns as soon as a worker of that
    queue answers; with no such worker it takes KEY_VALIDATION_WORKER_CHECK_SECONDS.
    """
    from django.conf import settings

    timeout = float(settings.KEY_VALIDATION_WORKER_CHECK_SECONDS)
    if app.conf.task_always_eager or timeout <= 0:
        return True
    queue = task_queue(task_name)
    now = time.monotonic()
    with _seen_lock:
        cached = _seen.get(queue)
    if cached is not None and now < cached[0]:
        return cached[1]
    found = _queue_has_consumer(queue, timeout=timeout)
    with _seen_lock:
        _seen[queue] = (now + (WORKER_SEEN_SECONDS if found else NO_WORKER_SECONDS), found)
    return found


def forget_workers() -> None:
    """Drop the cached answers (the next check asks the workers again)."""
    with _seen_lock:
        _seen.clear()


def _queue_has_consumer(queue: str, *, timeout: float) -> bool:
    def on_reply(reply: dict) -> None:
        for queues in reply.values():
            if any(isinstance(q, dict) and q.get("name") == queue for q in queues or ()):
                raise _Found  # stops collecting replies: one worker is enough

    try:
        app.control.broadcast("active_queues", reply=True, timeout=timeout, callback=on_reply)
    except _Found:
        return True
    except Exception:  # the broker itself is unreachable: no worker can be reached either
        logger.warning("cannot ask the Celery workers (is the broker up?)", exc_info=True)
    return False

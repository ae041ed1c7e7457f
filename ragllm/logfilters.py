"""Logging filters that keep the console readable under `make run`."""

from __future__ import annotations

import logging

# Beat sends these every few seconds; their own code logs a line when they did something.
QUIET_TASKS = frozenset(
    {
        "usage.tasks.drain_usage_buffer",
        "usage.tasks.reconcile_quotas",
        "tenants.tasks.expire_key_validations",
    }
)


class QuietPeriodicTasks(logging.Filter):
    """Drops Celery's routine lines ("Sending due task", "received", "succeeded") about the
    tasks in QUIET_TASKS. Failures and retries of those tasks are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        args = record.args
        values = args.values() if isinstance(args, dict) else (args or ())
        return not any(isinstance(v, str) and v in QUIET_TASKS for v in values)

"""Writes for usage, one module per subject.

- `ledger` (and `ledger_pg`, its PostgreSQL path): applying usage records to the database
  (events, hourly and daily rows, used-token counters), exactly once per (request id, time).
- `events`: draining the buffers into the ledger; the writer process's loop.
- `partitions`: the event table's day partitions, created ahead, and retention.
- `rollups`: hourly rows rolled into daily rows (a repair).
- `quotas`: reserving, releasing and settling tokens on quota counters.
"""

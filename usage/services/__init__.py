"""Writes for usage, one module per subject.

- `ledger`: applying usage records to the database (events, hourly rows, used-token counters).
- `events`: draining the buffers into the ledger, pruning old events.
- `rollups`: hourly rows rolled into daily rows.
- `quotas`: reserving, releasing and settling tokens on quota counters.
"""

"""Reads for usage: `sums` (usage by group, series, top tenants) and `quotas` (rules, status)."""

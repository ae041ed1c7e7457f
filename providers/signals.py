"""Signals the catalog sends (their receivers live with the apps that react to them)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a catalog load changed rows (bulk writes send no per-row signals).
catalog_changed = Signal()

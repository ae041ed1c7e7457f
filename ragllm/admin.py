"""The operator console as a whole: site-wide settings and the value formats every list shares.

Each app's admin.py registers its own models; this module only names the site and gives them
one way to show numbers, money, long ids and long texts, so that list pages stay readable (and
fit a 1400 px screen) whatever the data.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.utils.html import format_html

admin.site.site_header = "ragllm administration"
admin.site.site_title = "ragllm administration"
admin.site.index_title = "Operator console"
# "View site" leads to the API documentation: ragllm has no other public pages.
admin.site.site_url = "/api/docs/"
# Lists need the width more than a second navigation: every page is one click from Home.
admin.site.enable_nav_sidebar = False

EMPTY = "—"
admin.site.empty_value_display = EMPTY


def number(value: int | None) -> str:
    """1234567 as "1,234,567"; nothing as a dash."""
    return EMPTY if value is None else f"{value:,}"


def usd(value: Decimal | float | None) -> str:
    """Money in US dollars: cents from one dollar up, two significant digits below.

    "$1,234.50", "$0.42", "$0.016", "$0.0003", "$0.000046"; never exponent notation.
    """
    if value is None:
        return EMPTY
    amount = Decimal(value)
    if amount == 0 or abs(amount) >= 1:
        return f"${amount:,.2f}"
    places = min(max(2, -amount.adjusted() + 1), 8)
    text = f"{round(amount, places):.{places}f}"
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"


def short_id(value: object, length: int = 8) -> str:
    """A long id (a UUID) cut to its first characters; the whole id shows on hover."""
    text = str(value)
    if len(text) <= length:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[:length])


def shortened(text: str, limit: int, *, whole: str | None = None) -> str:
    """The first line of `text`, cut to `limit` characters; `whole` (default: the whole text)
    shows on hover."""
    text = (text or "").strip()
    whole = (whole or text).strip()
    if not text:
        return EMPTY
    first = text.splitlines()[0]
    if first == whole and len(first) <= limit:
        return first
    cut = first[: limit - 1].rstrip() + "…" if len(first) >= limit else first
    return format_html('<span title="{}">{}</span>', whole, cut)


def name_and_id(name: str, pk: object, limit: int = 28) -> str:
    """A name (cut when long) and the start of its id: "Acme Corp 1efc015b"; both whole on hover."""
    cut = name if len(name) <= limit else name[: limit - 1].rstrip() + "…"
    return format_html(
        '<span title="{} ({})">{} <span class="quiet">{}</span></span>', name, pk, cut, str(pk)[:8]
    )

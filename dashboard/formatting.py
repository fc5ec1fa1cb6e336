"""How the dashboard writes money, rates and tables (babel, so symbols and grouping follow
the currency's conventions)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
from babel.numbers import UnknownCurrencyError, format_currency, format_percent

LOCALE = "en_US"


def money(value: float | Decimal | None, currency: str | None) -> str:
    """``1234.5, "USD"`` → ``$1,234.50``; an unknown code is written after the amount."""
    amount = Decimal(str(value or 0))
    code = (currency or "USD").upper()
    try:
        return format_currency(amount, code, locale=LOCALE)
    except (UnknownCurrencyError, ValueError):
        return f"{amount:,.2f} {code}"


def percent(rate: float | None) -> str:
    """A 0..1 ratio as a percentage with one decimal: ``0.25`` → ``25.0%``."""
    return format_percent(rate or 0, "#,##0.0%", locale=LOCALE)


def table(rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table for ``st.dataframe``.

    Going through Arrow directly keeps time zones on timestamps; the pandas path warns
    (pandas 3 deprecates ``Series.values`` on tz-aware columns, which pyarrow still calls).
    """
    return pa.Table.from_pylist(rows)

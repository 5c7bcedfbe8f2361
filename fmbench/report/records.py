"""The report's tables as named records: a NamedTuple per table, one field per column, and its header row an instance
of the same NamedTuple, so each column's title is declared beside its field. Also the text a stored value shows."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from fmbench.report.tables import table


def record_table(records: Iterable[NamedTuple], header: NamedTuple) -> str:
    """A markdown table with one row per record and one column per field of header's type, titled by header."""
    return table([list(record) for record in records], list(header))


def plain(value) -> str:
    """A stored value as the report writes it: a float without trailing zeros ('all' for NaN), anything else as its
    text ('–' for empty text)."""
    if isinstance(value, float):
        return "all" if math.isnan(value) else f"{value:g}"
    return str(value) or "–"

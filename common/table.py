"""Render rows as an aligned text table, a markdown table or CSV (one helper for all reports)."""

from __future__ import annotations

import csv
import io
from typing import Sequence

FORMATS = ("table", "markdown", "csv")


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], fmt: str = "table",
           right_align_from: int = 1) -> str:
    """Render ``rows`` under ``headers``. Columns from ``right_align_from`` on are
    right-aligned (numbers) in the text and markdown forms."""
    cells = [[str(c) for c in row] for row in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(cells)
        return buffer.getvalue()
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> list[str]:
        return [v.rjust(w) if i >= right_align_from else v.ljust(w)
                for i, (v, w) in enumerate(zip(values, widths))]

    if fmt == "markdown":  # a "|" inside a cell would end it: escape it
        headers = [str(h).replace("|", "\\|") for h in headers]
        cells = [[c.replace("|", "\\|") for c in row] for row in cells]
        widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
                  for i, h in enumerate(headers)]
        rule = [("-" * (w - 1) + ":") if i >= right_align_from else "-" * w
                for i, w in enumerate(widths)]
        return "\n".join("| " + " | ".join(r) + " |"
                         for r in [line(list(map(str, headers))), rule] + [line(c) for c in cells]) + "\n"
    if fmt == "table":
        text = [line(list(map(str, headers))), ["-" * w for w in widths]] + [line(c) for c in cells]
        return "\n".join("  ".join(r).rstrip() for r in text) + "\n"
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")

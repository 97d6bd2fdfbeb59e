"""Per-layer shape / params / MACs tables of a variant, in every output format.

``docs/shapes.md`` is ``alexnet shapes --variant all --format markdown``;
``tests/test_docs.py`` fails when it is stale.
"""

from __future__ import annotations

import json

from common.shapes import LayerInfo, infer, totals
from common.spec import Variant
from common.table import render

HEADERS = ("layer", "type", "output (CxHxW)", "params", "MACs")


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _rows(infos: list[LayerInfo]) -> list[list[str]]:
    rows = [[i.name, i.kind, fmt_shape(i.out_shape), f"{i.params:,}", f"{i.macs:,}"] for i in infos]
    t = totals(infos)
    return rows + [["total", "", "", f"{t['params']:,}", f"{t['macs']:,}"]]


def shape_report(variant: Variant, fmt: str = "table") -> str:
    """The variant's layer table with totals: MACs and FLOPs (= 2 x MACs) side by side."""
    infos = infer(variant)
    t = totals(infos)
    if fmt == "json":
        return json.dumps({
            "variant": variant.name, "input": list(variant.input_shape),
            "num_classes": variant.num_classes, "source": variant.source, "notes": variant.notes,
            "layers": [{"name": i.name, "type": i.kind, "output": list(i.out_shape),
                        "params": i.params, "macs": i.macs} for i in infos],
            "totals": t,
        }, indent=2) + "\n"
    table = render(HEADERS, [[r[0], r[1], r[2], r[3], r[4]] for r in _rows(infos)], fmt,
                   right_align_from=2)
    if fmt == "csv":
        return table
    summary = (f"params {t['params']:,}   MACs {t['macs']:,}   FLOPs {t['flops']:,} "
               f"(= 2 x MACs, per image)")
    if fmt == "markdown":
        notes = f"\n{variant.notes}\n" if variant.notes else ""
        return (f"## {variant.name}\n\nSource: {variant.source}. Input {fmt_shape(variant.input_shape)}, "
                f"{variant.num_classes} classes.\n{notes}\n{table}\n{summary}\n")
    return (f"{variant.name}: input {fmt_shape(variant.input_shape)}, {variant.num_classes} classes "
            f"({variant.source})\n{table}{summary}\n")

"""Argument types shared by the subcommands: each rejects bad input with a clear message."""

from __future__ import annotations

import argparse
from typing import Callable


def _int_at_least(minimum: int, expected: str) -> Callable[[str], int]:
    """An integer argument type refusing values below ``minimum`` with "expected <expected>"."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value
    return parse


positive_int = _int_at_least(1, "a positive integer")
#: a seed and the like: NumPy's generators refuse negative seeds
non_negative_int = _int_at_least(0, "an integer 0 or more")


def positive_float(text: str) -> float:
    """A finite number above 0 (a learning rate, a tolerance): NaN, Inf, 0 and below refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def choice_list(choices: list[str], allow_all: bool = False) -> Callable[[str], list[str]]:
    """A comma-separated list of names from ``choices`` (or 'all')."""
    def parse(text: str) -> list[str]:
        if allow_all and text == "all":
            return list(choices)
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(map(repr, unknown)) or 'empty list'}; choose from "
                f"{', '.join(choices)}{' or all' if allow_all else ''}")
        return names
    return parse


def chw(text: str) -> tuple[int, int, int]:
    """An input shape written CxHxW (e.g. 3x224x224)."""
    parts = text.lower().split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected CxHxW with positive integers, e.g. 3x224x224; "
                                         f"got {text!r}")
    return values  # type: ignore[return-value]


def add_tolerances(parser: argparse.ArgumentParser, rel_l2: float, norm_max: float) -> None:
    """The float64 comparison's two tolerances (crosscheck.compare.Tolerances), as options."""
    parser.add_argument("--rel-l2-tol", type=positive_float, default=rel_l2,
                        help="relative L2 tolerance against float64 (default %(default)g)")
    parser.add_argument("--norm-max-tol", type=positive_float, default=norm_max,
                        help="normalized max-error tolerance against float64 (default %(default)g)")

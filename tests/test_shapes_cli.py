"""``alexnet shapes``: every format, bad input, ``--verify``, and docs/shapes.md freshness."""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet_cli.main import main
from alexnet_cli.shapes import all_variants_markdown
from tests.conftest import FRAMEWORK_NAMES, VARIANTS, backend_or_skip

ROOT = Path(__file__).resolve().parents[1]


def shapes(capsys, *argv) -> tuple[int, str, str]:
    code = main(["shapes", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("variant", VARIANTS)
def test_json_matches_totals(capsys, variant):
    code, out, _ = shapes(capsys, "--variant", variant, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["totals"]["params"] == sum(l["params"] for l in data["layers"])
    assert data["totals"]["flops"] == 2 * data["totals"]["macs"]


def test_table_and_csv(capsys):
    code, out, _ = shapes(capsys, "--variant", "torchvision")
    assert code == 0 and "MACs 714,188,480" in out and "FLOPs 1,428,376,960" in out
    code, out, _ = shapes(capsys, "--variant", "torchvision", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["layer", "type", "output (CxHxW)", "params", "MACs"]
    assert rows[-1][0] == "total" and rows[-1][3] == "61,100,840"


def test_input_override(capsys):
    code, out, _ = shapes(capsys, "--variant", "d2l", "--input", "3x227x227", "--num-classes", "7",
                          "--format", "json")
    data = json.loads(out)
    assert data["input"] == [3, 227, 227] and data["layers"][-1]["output"] == [7]


@pytest.mark.parametrize("argv,message", [
    (["--variant", "paper", "--input", "3x40x40"], "smallest input that works is 3x67x67"),
    (["--variant", "lenet"], "unknown variant 'lenet'"),
])
def test_bad_input_is_a_clear_error(capsys, argv, message):
    code, out, err = shapes(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize("argv", [["--input", "3x0x5"], ["--input", "big"], ["--num-classes", "-1"],
                                  ["--format", "xml"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(["shapes", *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_verify_real_shapes_in_every_framework(capsys, variant):
    for name in FRAMEWORK_NAMES:
        backend_or_skip(name)
    code, out, _ = shapes(capsys, "--variant", variant, "--verify")
    assert code == 0
    for name in FRAMEWORK_NAMES:
        assert f"verify {name}: all" in out


def test_docs_shapes_is_fresh():
    expected = all_variants_markdown()
    actual = (ROOT / "docs" / "shapes.md").read_text()
    assert actual == expected, ("docs/shapes.md is stale: regenerate it with "
                                "`alexnet shapes --variant all --format markdown > docs/shapes.md`")


def test_python_m_crosscheck_is_alexnet_crosscheck():
    out = subprocess.run([sys.executable, "-m", "crosscheck", "--help"], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout
    assert "usage: alexnet crosscheck" in out and "--require" in out


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from alexnet_cli.main import build_parser
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_subcommand_help_formats(command):
    # argparse expands %-formats in help strings only when --help is asked for: a stray "%"
    # is a crash that no other test reaches.
    assert f"usage: alexnet {command}" in _subparsers()[command].format_help()

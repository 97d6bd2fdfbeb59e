"""The docs' claims that code can check.

- Every ``alexnet ...`` command example in README.md and docs/*.md is parsed by the real
  argument parser (parse only, nothing runs), so an option that is renamed, removed or given
  other choices cannot leave a doc stale. A command example is a line of a fenced code block
  that starts with ``alexnet `` (after any ``VAR=value`` assignments), or, in a console
  transcript (a ``console`` block, or one with ``$ `` prompts), a ``$ `` line that does; a
  line ending in ``\\`` continues on the next. Output lines in transcripts are not commands.
  Options must be spelled out (argparse would take a prefix), and a ``--variant`` the parser
  takes as a plain string must be registered.
- The README shows one example of every command.
- docs/PORTING.md's table of each library's LRN defaults is the installed libraries'.
"""

from __future__ import annotations

import argparse
import inspect
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from alexnet_cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: doc lines whose command holds a placeholder the parser would refuse: "file:line" -> why.
#: Empty: every example parses as written.
SKIP: dict[str, str] = {}
#: where a command line stops being the command's arguments
SHELL_ENDS = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "&>", "<"}


def command_examples(path: Path) -> list[tuple[int, str]]:
    """(line number, command text) of every ``alexnet`` command example in a Markdown file."""
    found: list[tuple[int, str]] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^\s*(```+|~~~+)\s*(\S*)", lines[i])
        if not fence:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence.group(1)):
            end += 1
        block = lines[i + 1:end]
        transcript = fence.group(2) == "console" or any(line.lstrip().startswith("$ ") for line in block)
        j = 0
        while j < len(block):
            start, text = i + 2 + j, block[j].strip()
            while text.endswith("\\") and j + 1 < len(block):  # a continued line
                j += 1
                text = text[:-1].rstrip() + " " + block[j].strip()
            j += 1
            if transcript:
                if not text.startswith("$ "):
                    continue  # output
                text = text[2:].strip()
            words = text.split()
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words.pop(0)  # VAR=value before the command
            if words and words[0] == "alexnet":
                found.append((start, " ".join(words)))
        i = end + 1
    return found


def argv_of(command: str) -> list[str]:
    """The arguments after ``alexnet``, up to a pipe, redirection or comment."""
    words = shlex.split(command, comments=True)
    argv = []
    for word in words[1:]:
        if word in SHELL_ENDS or word.startswith((">", "2>")):
            break
        argv.append(word)
    return argv


def parse_error(argv: list[str]) -> str | None:
    """None where the real parser takes ``argv``, else its message."""
    parser = build_parser()
    messages: list[str] = []

    def error(self: argparse.ArgumentParser, message: str) -> None:
        messages.append(f"{self.prog}: {message}")
        raise SystemExit(2)

    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error  # subparsers report through their own error()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None) or not {"-h", "--help"} & set(argv):
            return messages[-1] if messages else f"exit {exc.code}"
        return None
    finally:
        argparse.ArgumentParser.error = original
    return abbreviated(parser, argv) or unknown_variant(args)


def abbreviated(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """argparse takes a prefix of an option (``--chec``): a doc's option must be spelled out,
    or renaming ``--check`` to ``--checks`` would leave ``--check`` parsing."""
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    command = next(word for word in argv if not word.startswith("-"))
    known = set(parser._option_string_actions) | set(sub.choices[command]._option_string_actions)
    short = [word.split("=")[0] for word in argv
             if word.startswith("--") and word.split("=")[0] not in known]
    return f"abbreviated option {', '.join(short)}" if short else None


def unknown_variant(args: argparse.Namespace) -> str | None:
    """Some commands take ``--variant`` as a string and check it after parsing: a doc's
    variant must be registered too (or ``all``/``auto`` where the command takes them)."""
    from common.variants import variant_names
    given = getattr(args, "variant", None)
    names = given.split(",") if isinstance(given, str) else list(given or [])
    unknown = [name for name in names if name not in {*variant_names(), "all", "auto"}]
    return f"unknown variant {', '.join(unknown)}" if unknown else None


def all_examples() -> list:
    cases = []
    for path in DOCS:
        for line, command in command_examples(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            marks = [pytest.mark.skip(reason=SKIP[where])] if where in SKIP else []
            cases.append(pytest.param(where, command, id=where, marks=marks))
    return cases


EXAMPLES = all_examples()


def test_the_docs_have_command_examples():
    files = {param.values[0].split(":")[0] for param in EXAMPLES}
    assert "README.md" in files and "docs/inspect.md" in files and len(EXAMPLES) >= 20, files


@pytest.mark.parametrize("where,command", EXAMPLES)
def test_every_command_example_parses(where, command):
    error = parse_error(argv_of(command))
    assert error is None, f"{where}: `{command}` is refused by alexnet's parser: {error}"


def _command_names() -> set[str]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_the_readme_shows_every_command():
    shown = {argv_of(command)[0] for _, command in command_examples(ROOT / "README.md")}
    assert shown == _command_names(), f"README.md has no example of {_command_names() - shown}"


PLANTED = """# a doc

```console
$ alexnet crosscheck --variant cifar-small \\
    --no-such-option
alexnet crosscheck: error: an output line, never parsed
$ alexnet shapes --variant paper
```

```
ALEXNET_MEMORY_LIMIT=4G alexnet train --framework pytorch --variant paper --dataset digits
alexnet init --variant paper --out w.safetensors | tee log
alexnet crosscheck --variant no-such-variant
alexnet convert --variant no-such-variant --from a.pt --to b.safetensors
alexnet crosscheck --variant paper --chec forward
```
"""


def test_a_doc_line_with_a_bad_option_fails(tmp_path):
    """The check can fail: a planted doc's bad option on a continued line, and a bad choice,
    are refused (a variant the parser takes as a string too, and an option argparse would take
    abbreviated), while its output line is not taken for a command and its good commands pass."""
    doc = tmp_path / "planted.md"
    doc.write_text(PLANTED)
    examples = command_examples(doc)
    assert [line for line, _ in examples] == [4, 7, 11, 12, 13, 14, 15], examples
    errors = {line: parse_error(argv_of(command)) for line, command in examples}
    assert "--no-such-option" in errors[4], errors
    assert "no-such-variant" in errors[13] and "no-such-variant" in errors[14], errors
    assert "abbreviated option --chec" in errors[15], errors
    assert errors[7] is None and errors[11] is None and errors[12] is None, errors
    with pytest.raises(AssertionError, match="refused by alexnet's parser"):
        test_every_command_example_parses("planted.md:4", examples[0][1])


# --------------------------------------------------------------------------------------------
# docs/PORTING.md: each library's LRN with its arguments left out


def _library(key: str):
    from crosscheck.porting_guide import LIBRARY_LRN
    return next(row for row in LIBRARY_LRN if row.key == key)


def _expected(row, size: int, divides: bool, x: np.ndarray) -> np.ndarray:
    from common import reference
    from common.spec import LRN
    layer = LRN("lrn", size=size, alpha=row.alpha, beta=row.beta, k=row.k, alpha_over_size=divides)
    return reference.lrn(x.astype(np.float64), layer, {})


def _rel_l2(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def _run_defaults(key: str, x: np.ndarray, size: int) -> np.ndarray:
    """The library's LRN on NCHW ``x``, every optional argument left out (``size`` given
    only where the call requires it); and its signature or docstring checked against the row."""
    row = _library(key)
    if key == "pytorch":
        import torch
        for fn in (torch.nn.functional.local_response_norm, torch.nn.LocalResponseNorm.__init__):
            params = inspect.signature(fn).parameters
            assert params["size"].default is inspect.Parameter.empty
            assert (params["alpha"].default, params["beta"].default, params["k"].default) == (
                row.alpha, row.beta, row.k)
        out = torch.nn.functional.local_response_norm(torch.from_numpy(x), size).numpy()
        np.testing.assert_array_equal(torch.nn.LocalResponseNorm(size)(torch.from_numpy(x)).numpy(), out)
        return out
    if key == "mxnet":
        import mxnet as mx
        doc = dict(re.findall(r"^(\w+) : [^\n]*?default=(\S+)$", mx.nd.LRN.__doc__, re.M))
        assert np.float32(float(doc["alpha"])) == np.float32(row.alpha)
        assert (float(doc["beta"]), float(doc["knorm"])) == (row.beta, row.k)
        assert re.search(r"^nsize : int \(non-negative\), required$", mx.nd.LRN.__doc__, re.M)
        return mx.nd.LRN(mx.nd.array(x), nsize=size).asnumpy()
    if key == "tensorflow":
        import keras
        import tensorflow as tf
        for fn in (tf.nn.lrn, tf.nn.local_response_normalization):
            params = inspect.signature(fn).parameters
            assert (2 * params["depth_radius"].default + 1, params["alpha"].default,
                    params["beta"].default, params["bias"].default) == (row.size, row.alpha, row.beta, row.k)
        assert not [n for n in dir(keras.layers) if "lrn" in n.lower() or "responsenorm" in n.lower()]
        return tf.nn.lrn(tf.constant(x.transpose(0, 2, 3, 1))).numpy().transpose(0, 3, 1, 2)
    raise KeyError(key)


@pytest.mark.parametrize("key", ["pytorch", "mxnet", "tensorflow"])
def test_the_guides_lrn_defaults_are_the_installed_libraries(key):
    """Each framework row of ``porting_guide.LIBRARY_LRN``: the library's defaults are the row's,
    and the library called with only its required arguments computes the float64 reference
    LRN with the row's constants in the row's convention (``LRN_DIVIDES_ALPHA``), and not in
    the other one."""
    from common.conventions import LRN_DIVIDES_ALPHA
    from tests.conftest import backend_or_skip
    backend_or_skip(key)
    row = _library(key)
    size = row.size or 5  # where the call requires a window, the paper's
    # 16 channels hold TensorFlow's 11-channel window; the scale makes alpha * sum of squares ~1
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 16, 3, 3)) / np.sqrt(row.alpha)).astype(np.float32)
    got = _run_defaults(key, x, size)
    divides = LRN_DIVIDES_ALPHA[key]
    assert _rel_l2(got, _expected(row, size, divides, x)) < 1e-5
    assert _rel_l2(got, _expected(row, size, not divides, x)) > 1e-2

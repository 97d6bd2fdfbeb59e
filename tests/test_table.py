"""The one table renderer of every report."""

from common.table import render


def test_markdown_escapes_pipes_inside_cells():
    text = render(["name", "error (eps|w|)"], [["a|b", "1.0"]], "markdown")
    header, _, row = text.splitlines()
    assert header.count(" | ") == 1 and row.count(" | ") == 1
    assert "eps\\|w\\|" in header and "a\\|b" in row

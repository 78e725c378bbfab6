"""The README's bad-input catalogue stays true: every row names tests that exist, and there are at least 30 rows."""

from __future__ import annotations

import re

from tests.conftest import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def _rows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- BEGIN bad-input catalogue -->", 1)[1].split("<!-- END bad-input catalogue -->", 1)[0]
    return [line for line in block.splitlines() if re.match(r"\| \d+ \|", line)]


def test_the_catalogue_has_at_least_thirty_cases() -> None:
    rows = _rows()
    assert len(rows) >= 30
    assert [int(row.split("|")[1]) for row in rows] == list(range(1, len(rows) + 1))


def test_every_row_names_tests_that_exist() -> None:
    for row in _rows():
        references = re.findall(r"`([^`]+)`", row.rsplit("|", 2)[1])
        assert references, row
        path = None
        for reference in references:
            if "::" in reference:
                path, name = reference.split("::")
            else:
                name = reference  # another test in the file named just before
            assert path is not None, row
            source = (PROJECT_ROOT / path).read_text(encoding="utf-8")
            assert f"def {name}(" in source, f"{path} has no {name} (README row: {row})"

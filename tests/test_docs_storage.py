"""docs/storage.md stays in step with the schema: its table list and its list of migrations."""

from __future__ import annotations

import re
from pathlib import Path

from commerce.adapters.storage.sql import schema
from commerce.adapters.storage.sql.tables import metadata

DOC = (Path(__file__).resolve().parent.parent / "docs" / "storage.md").read_text()
_WORDS = "zero one two three four five six seven eight nine ten eleven twelve"
NUMBERS = {word: n for n, word in enumerate(_WORDS.split(" "))}


def _schema_section() -> str:
    return DOC.split("## The schema", 1)[1].split("\n## ", 1)[0]


def test_the_documented_tables_are_the_tables_of_the_schema() -> None:
    section = _schema_section()
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert sorted(rows) == sorted(metadata.tables)
    count = re.search(r"^(\w+) tables;", section, flags=re.MULTILINE)
    assert count is not None
    assert NUMBERS[count.group(1).lower()] == len(metadata.tables)


def test_the_documented_migrations_are_the_migrations_that_ship() -> None:
    match = re.search(r"The migrations so far \((\w+)\):(.*?)(?:\n- |\n\n)", DOC, flags=re.DOTALL)
    assert match is not None
    listed = re.findall(r"`(\d{4})`", match.group(2))
    shipped = sorted(schema.migrations().known)
    assert sorted(set(listed)) == shipped
    assert NUMBERS[match.group(1)] == len(shipped)

"""file_line: the file line of a CSV's data row, as pandas counts rows.

The property: for any file of rows, blank and whitespace-only lines, quoted fields that
span lines and either line ending, in any compression pandas infers, the line
:func:`file_line` names for a data row is the line that row starts on (known from how the
file was written), and pandas reads as many rows as were written.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile

import pandas as pd
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.file_lines import file_line

COMPRESS = {
    ".csv": lambda b: b,
    ".csv.gz": lambda b: gzip.compress(b, mtime=0),
    ".csv.bz2": bz2.compress,
    ".csv.xz": lzma.compress,
    ".csv.zst": lambda b: zstandard.ZstdCompressor().compress(b),
}


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("table.csv", data)
    return buf.getvalue()


COMPRESS[".csv.zip"] = _zip

# a data row: a plain field, or a quoted one holding line breaks (one more line each); a
# line pandas keeps as a row of one field although it looks empty: "", other white space
FIELD = st.one_of(st.integers(0, 999).map(str), st.integers(1, 3).map(lambda n: '"a' + "\nb" * n + '"'))
BLANK = st.sampled_from(["", "   ", "\t", " \t "])
LOOKS_BLANK = st.sampled_from(['""', "\x0b", "\x0c", "\u00a0"])


@st.composite
def tables(draw):
    """(text, header, starts): a CSV's text and the line each data row starts on."""
    header = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    lines += draw(st.lists(BLANK, max_size=2))
    if header:
        lines.append("a,b")
    starts = []
    for _ in range(draw(st.integers(1, 8))):
        lines += draw(st.lists(BLANK, max_size=3))
        starts.append(sum(line.count("\n") + 1 for line in lines) + 1)
        fields = st.lists(FIELD, min_size=2, max_size=2).map(",".join)
        row = draw(st.one_of(fields, LOOKS_BLANK) if len(starts) > 1 else fields)  # the first sets 2 columns
        lines.append(row)
    lines += draw(st.lists(BLANK, max_size=2))
    text = newline.join(line.replace("\n", newline) for line in lines) + newline
    return text, header, starts


@settings(max_examples=60, deadline=None)
@given(table=tables(), suffix=st.sampled_from(sorted(COMPRESS)))
def test_the_line_each_row_starts_on(tmp_path_factory, table, suffix):
    text, header, starts = table
    path = tmp_path_factory.mktemp("t") / f"table{suffix}"
    path.write_bytes(COMPRESS[suffix](text.encode()))
    df = pd.read_csv(path, header=0 if header else None, dtype=str, keep_default_na=False)
    assert len(df) == len(starts)  # pandas' rows are the rows written (blank lines skipped)
    assert [file_line(path, r, header) for r in range(len(df))] == starts


def test_known_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n\n1,2\n   \n"x\ny",3\n\n4,5\n')
    assert [file_line(path, r) for r in range(3)] == [3, 5, 8]
    assert [file_line(path, r, header=False) for r in range(4)] == [1, 3, 5, 8]


@pytest.mark.parametrize("row", [0, 7])
def test_without_a_readable_file_the_count_without_blank_lines(tmp_path, row):
    assert file_line(tmp_path / "none.csv", row) == row + 2
    assert file_line(tmp_path / "none.csv", row, header=False) == row + 1
    short = tmp_path / "short.csv"
    short.write_text("a\n1\n")
    assert file_line(short, 5) == 7  # past the last row: the same count

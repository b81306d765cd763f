"""The file line of a CSV's data row, for error messages that name a line.

pandas' CSV reader skips blank lines (empty, or spaces and tabs only: ``skip_blank_lines``,
its default) and reads a quoted field across line breaks, so a data row's index plus the
header's one line is its file line only in a file without either. :func:`file_line` counts
the lines as the reader does, once, when a message needs one (the error path: it re-reads
the file up to that row).
"""

from __future__ import annotations

import csv
from pathlib import Path


def _blank(record: list[str]) -> bool:
    """A record pandas skips: an empty line, or one of spaces and tabs only.

    (A line of ``""``, an empty quoted field, is a row to pandas, and so is one holding
    other white space, a vertical tab or a no-break space.)
    """
    return not record or (len(record) == 1 and record[0] != "" and not record[0].strip(" \t"))


def file_line(path: str | Path, row: int, header: bool = True) -> int:
    """The 1-based line on which data row ``row`` of the CSV file ``path`` starts.

    Rows are counted as ``pandas.read_csv`` counts them with its defaults (blank lines
    skipped, quoted fields that span lines kept in one row), through the same decompression
    (inferred from the suffix: ``.gz``, ``.bz2``, ``.xz``, ``.zst``, ``.zip``).

    Args:
        path: the CSV file (possibly compressed).
        row: 0-based data row, as in the DataFrame read from it.
        header: the first non-blank record is a header row (not a data row).

    Returns:
        The file line, or ``row + 2`` (``row + 1`` without a header) if the file cannot be
        re-read or has fewer rows (a line count is only ever used in a message).
    """
    fallback = row + (2 if header else 1)
    target = row + (1 if header else 0)  # the record to find, counting non-blank ones from 0
    try:
        # pandas' own opener: the same decompression as the read that found the row
        from pandas.io.common import get_handle

        with get_handle(str(path), "r", compression="infer", encoding="utf-8", errors="replace") as handles:
            reader = csv.reader(handles.handle)
            start = 1  # the line the next record starts on
            seen = 0
            for record in reader:
                if not _blank(record):
                    if seen == target:
                        return start
                    seen += 1
                start = reader.line_num + 1
    except Exception:  # an unreadable file keeps the count without blank lines
        return fallback
    return fallback

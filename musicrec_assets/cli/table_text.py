"""A :class:`~musicrec_assets.warehouse.queries.Table` as text, exactly as pandas'
``DataFrame.to_string(index=False)`` prints the frame DuckDB's ``.df()`` makes of the same
rows: the readers print what they printed when they went through pandas, without the import
of pandas, which alone takes longer than a reader may take to answer (issue 25).

Only the DuckDB types whose printing is reproduced here are taken (:func:`printable`);
``musicrec sql`` prints an answer of any other type through pandas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from musicrec_assets.warehouse.queries import Table, missing

INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
}
FLOATS = {"FLOAT", "DOUBLE"}
# pandas' display.precision, the decimals it shows of a float
PRECISION = 6
# a number with a decimal point, whose trailing zeros pandas trims across the column
DECIMAL_NUMBER = re.compile(r"^\s*[+-]?[0-9]+\.[0-9]*$")
ESCAPED = str.maketrans({"\t": r"\t", "\r": r"\r", "\n": r"\n"})


def printable(types: Iterable[str]) -> bool:
    """Whether :func:`table_text` prints columns of DuckDB's ``types`` as pandas would."""
    return all(type_ in INTEGERS | FLOATS | {"VARCHAR", "TIMESTAMP"} for type_ in types)


def table_text(table: Table, line_width: int | None = None) -> str:
    """The rows of ``table`` under their column names, each column right-aligned, one space
    between columns; within ``line_width`` columns, blocks of columns one under the other."""
    columns = [_header(name, column.type) for name, column in table.columns.items()]
    for column, cells in zip(columns, map(_cells, table.columns.values()), strict=True):
        width = max(map(len, column + cells))
        column[:] = [text.rjust(width) for text in column + cells]
    blocks = _blocks([len(column[0]) for column in columns], line_width)
    if len(blocks) == 1:
        return "\n".join(map(" ".join, zip(*columns, strict=True)))
    lines = len(columns[0])
    texts = []
    for number, (start, end) in enumerate(blocks):
        last = number == len(blocks) - 1
        # pandas' mark of a block that goes on below, and the padding it gives the other lines
        ending = [" "] * lines if last else [" \\"] + ["  "] * (lines - 1)
        texts.append("\n".join(map(" ".join, zip(*columns[start:end], ending, strict=True))))
    return "\n\n".join(texts)


def _header(name: str, type_: str) -> list[str]:
    # pandas leaves room for a sign before the name of a numeric column
    numeric = type_ in INTEGERS | FLOATS
    return [(" " if numeric else "") + name.translate(ESCAPED)]


def _cells(column) -> list[str]:
    values = column.values
    if column.type in INTEGERS:
        return ["<NA>" if value is None else str(value) for value in values]
    if column.type in FLOATS:
        return _floats(values)
    if column.type == "TIMESTAMP":
        return _timestamps(values)
    # a column of NULLs only is one of Python objects to pandas, a NULL among text its NaN
    absent = "None" if all(value is None for value in values) else "NaN"
    return [absent if missing(value) else value.translate(ESCAPED) for value in values]


def _floats(values: list) -> list[str]:
    """pandas' FloatArrayFormatter: PRECISION decimals, trailing zeros trimmed alike, and
    exponents where a value would show as 0 or the column gets long with large values."""
    cells = _trimmed([_float(value, "f") for value in values])
    sizes = [abs(value) for value in values if not missing(value)]
    too_long = max(map(len, cells)) > PRECISION + 6
    if any(0 < size < 10**-PRECISION for size in sizes) or (
        too_long and any(size > 1e6 for size in sizes)
    ):
        cells = _trimmed([_float(value, "e") for value in values])
    return cells


def _float(value, notation: str) -> str:
    return "NaN" if missing(value) else f"{value:.{PRECISION}{notation}}"


def _trimmed(cells: list[str]) -> list[str]:
    """The trailing zeros every decimal number of the column has, cut; one kept after the
    point."""
    numbers = [DECIMAL_NUMBER.match(cell) is not None for cell in cells]
    if not any(numbers):
        return cells
    while all(cell.endswith("0") for cell, number in zip(cells, numbers, strict=True) if number):
        cells = [cell[:-1] if number else cell for cell, number in zip(cells, numbers, strict=True)]
    return [
        cell + "0" if number and cell.endswith(".") else cell
        for cell, number in zip(cells, numbers, strict=True)
    ]


def _timestamps(values: list) -> list[str]:
    """Dates alone where every time is midnight; else to the second, with the milli- or
    microseconds where any value has them."""
    present = [value for value in values if value is not None]
    if all(value.time() == value.min.time() for value in present):
        return ["NaT" if value is None else value.date().isoformat() for value in values]
    micros = {value.microsecond for value in present}
    digits = 6 if any(micro % 1000 for micro in micros) else 3 if any(micros) else 0

    def shown(value) -> str:
        fraction = f".{value.microsecond:06d}"[: digits + 1] if digits else ""
        return value.isoformat(" ", "seconds") + fraction

    return ["NaT" if value is None else shown(value) for value in values]


def _blocks(widths: list[int], line_width: int | None) -> list[tuple[int, int]]:
    """pandas' split of columns of ``widths`` into blocks of at most ``line_width``: each
    (first, past the last) column of a block."""
    if line_width is None:
        return [(0, len(widths))]
    starts = [0]
    used = 0
    for number, width in enumerate(widths):
        used += width + 1
        room_for_the_mark = 1 if number == len(widths) - 1 else 2
        if number > 0 and used + room_for_the_mark > line_width:
            starts.append(number)
            used = width + 1
    ends = [*starts[1:], len(widths)]
    return list(zip(starts, ends, strict=True))

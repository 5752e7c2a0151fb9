"""A landing file's records as text, split here rather than by ``read_json``: every record of a
file that ``read_json`` cannot read, and the raw text of the records a file's validation
rejects (``rejected_rows.raw`` is the input's own bytes, never a rebuild from known fields).

A record has an *ordinal*, its place among the file's records (the order ``read_json``
gives), and a *number*, which ``rejected_rows.record_no`` shows: its line in JSON Lines, where
blank lines count as lines but are no records, or its place in a JSON array. Bytes that are
not UTF-8 are kept escaped (``\\xe9``), and such a record is rejected; so is a record over
`MAX_RECORD_BYTES`, of which only the first `KEPT_BYTES_OF_LONG_RECORD` are kept. A UTF-8
BOM at the start of the file is skipped.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa

from musicrec_assets.warehouse.landing import UTF8_BOM, LandingFile

BLOCK_BYTES = 8 * 2**20
# a block's records are Python objects, some 100 bytes each however short the record: at most
# this many at once, so that a file of tiny records costs no more memory than one block
RECORDS_PER_BLOCK = 65_536
MAX_RECORD_BYTES = 16 * 2**20  # read_json's own limit on one record
KEPT_BYTES_OF_LONG_RECORD = 2**20

INVALID_UTF8 = "invalid UTF-8"
TOO_LONG = f"record over {MAX_RECORD_BYTES // 2**20} MiB"

RAW_RECORDS = "raw_records"  # the temporary table the loaders below fill


@dataclass
class Block:
    """Consecutive records of a file, as bytes."""

    first_ordinal: int
    numbers: np.ndarray  # each record's number
    records: list[bytes]
    cut: int | None = None  # the index of a record over MAX_RECORD_BYTES, kept as its start

    def texts(self, indices: np.ndarray) -> tuple[list[str], list[str | None]]:
        """The text of the records at ``indices`` and the problem each has, if any."""
        if len(indices) == len(self.records):
            chosen = self.records
        else:
            chosen = [self.records[i] for i in indices.tolist()]
        try:
            # one decode for the whole block; a record that holds the separator itself (never
            # valid JSON) splits into more pieces, and takes the record by record way
            texts = b"\0".join(chosen).decode().split("\0") if chosen else []
            problems: list[str | None] = [None] * len(chosen)
            if len(texts) != len(chosen):
                raise UnicodeDecodeError("utf-8", b"", 0, 0, "a record holds a NUL")
        except UnicodeDecodeError:
            texts, problems = [], []
            for record in chosen:
                try:
                    texts.append(record.decode())
                    problems.append(None)
                except UnicodeDecodeError:
                    texts.append(record.decode(errors="backslashreplace"))
                    problems.append(INVALID_UTF8)
        if self.cut is not None and (at := np.flatnonzero(indices == self.cut)).size:
            texts[at[0]] = chosen[at[0]].decode(errors="backslashreplace")
            problems[at[0]] = TOO_LONG
        return texts, problems


class NotOneArray(Exception):
    """An array's text turned out not to be one JSON array after some of its elements were
    given as records: it is one record instead, ``whole`` (its whole text)."""

    def __init__(self, whole: Block):
        super().__init__("not one JSON array")
        self.whole = whole


def blocks(file: LandingFile, json_format: str) -> Iterator[Block]:
    """The file's records, in order, at most `RECORDS_PER_BLOCK` at a time. Raises
    `landing.UnreadableFile` (bad gzip) or OSError, and `NotOneArray` when an array is found
    not to be one: the blocks given so far are then void."""
    with file.open_content() as stream:
        yield from _array_blocks(stream) if json_format == "array" else _line_blocks(stream)


def load_all(con, file: LandingFile, json_format: str) -> None:
    """Every record of ``file`` into ``raw_records(ordinal, record_no, raw, problem)``."""
    _load(con, file, json_format, lambda start, end: np.arange(end - start))


def load_chosen(con, file: LandingFile, json_format: str, ordinals: np.ndarray) -> int:
    """The records at ``ordinals`` (sorted) into ``raw_records``; returns how many records the
    file has, by which the caller knows that its numbering and ours agree."""

    def chosen(start: int, end: int) -> np.ndarray:
        low, high = np.searchsorted(ordinals, [start, end])
        return ordinals[low:high] - start

    return _load(con, file, json_format, chosen)


def _load(con, file: LandingFile, json_format: str, chosen) -> int:
    """The records ``chosen(start, end)`` picks of each block (by their indices in it, of
    the block of ordinals ``start`` to ``end``, end excluded) into ``raw_records``, one block
    at a time; returns how many records the file has."""
    _create(con)
    count = 0
    try:
        for block in blocks(file, json_format):
            count = _take(con, block, chosen)
    except NotOneArray as found:
        _create(con)
        count = _take(con, found.whole, chosen)
    return count


def _take(con, block: Block, chosen) -> int:
    """The records of ``block`` that ``chosen`` picks into ``raw_records``; returns the last
    ordinal of the block."""
    end = block.first_ordinal + len(block.records)
    indices = chosen(block.first_ordinal, end)
    if len(indices):
        _append(con, block, indices)
    return end - 1


def _create(con) -> None:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {RAW_RECORDS}
            (ordinal BIGINT, record_no BIGINT, raw VARCHAR, problem VARCHAR)"""
    )


def _append(con, block: Block, indices: np.ndarray) -> None:
    texts, problems = block.texts(indices)
    batch = pa.table(
        {
            "ordinal": pa.array(indices + block.first_ordinal, pa.int64()),
            "record_no": pa.array(block.numbers[indices], pa.int64()),
            "raw": pa.array(texts, pa.large_string()),
            "problem": pa.array(problems, pa.string()),
        }
    )
    con.register("raw_batch", batch)
    try:
        con.execute(f"INSERT INTO {RAW_RECORDS} SELECT * FROM raw_batch")
    finally:
        con.unregister("raw_batch")


def _line_blocks(stream: IO[bytes]) -> Iterator[Block]:
    """JSON Lines, read `BLOCK_BYTES` at a time, in blocks of the complete lines of a read,
    at most `RECORDS_PER_BLOCK` lines each. A line longer than a read is gathered over several
    reads, up to `MAX_RECORD_BYTES`; past it, the rest is dropped as it comes."""
    ordinal, line_no = 1, 1
    partial, partial_cut = b"", False
    first = True
    while chunk := stream.read(BLOCK_BYTES):
        if first:
            chunk, first = chunk.removeprefix(UTF8_BOM), False
        blank_in_read = _BLANK_LINE.search(chunk) is not None
        rest = chunk
        while b"\n" in rest:
            # the lines of a block, and what follows them in the read: split no further than
            # one block, so that a read of tiny lines is not millions of objects at once
            lines = rest.split(b"\n", RECORDS_PER_BLOCK)
            rest = lines.pop()
            lines[0], first_cut = _grow(partial, lines[0], partial_cut)
            partial, partial_cut = b"", False
            block = _block(lines, ordinal, line_no, first_cut, blank_in_read)
            ordinal += len(block.records)
            line_no += len(lines)
            yield block
        # shorter than a read, so below MAX_RECORD_BYTES unless it continues a long line
        partial, partial_cut = _grow(partial, rest, partial_cut)
    if partial.strip():
        yield _block([partial], ordinal, line_no, partial_cut, blank_in_read=False)


def _grow(partial: bytes, more: bytes, cut: bool) -> tuple[bytes, bool]:
    """A line's bytes so far plus ``more``, cut to its start once over MAX_RECORD_BYTES."""
    if cut:
        return partial, True
    grown = partial + more
    if len(grown) > MAX_RECORD_BYTES:
        return grown[:KEPT_BYTES_OF_LONG_RECORD], True
    return grown, False


# a line of white space only, between two newlines of a read
_BLANK_LINE = re.compile(rb"\n[ \t\r\x0b\x0c]*\n")


def _block(
    lines: list[bytes], ordinal: int, line_no: int, first_cut: bool, blank_in_read: bool
) -> Block:
    """``lines``, complete lines of one read (the first may be completed from earlier reads),
    without the blank ones. ``blank_in_read``: whether the read holds a blank line between two
    of its newlines (else only the first of ``lines`` may be blank)."""
    if lines[0].strip() and not blank_in_read:
        block = Block(ordinal, np.arange(line_no, line_no + len(lines)), lines)
    else:
        kept = [i for i, line in enumerate(lines) if line.strip()]
        block = Block(ordinal, np.array(kept, dtype=np.int64) + line_no, [lines[i] for i in kept])
    if first_cut:
        block.cut = 0  # a cut line is long, so never blank: it is the block's first record
    return block


_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _array_blocks(stream: IO[bytes]) -> Iterator[Block]:
    """A JSON array's elements, split by Python's JSON scanner over the whole text (bytes
    that are not UTF-8 carried through as surrogates), given a block at a time as the scanner
    finds them. An array that cannot be split is one record, its whole text: found at once, it
    is the one block; found after blocks were given, it raises `NotOneArray`."""
    text = stream.read().removeprefix(UTF8_BOM).decode(errors="surrogateescape")
    first, starts, ends = 0, array("q"), array("q")
    try:
        for start, end in _element_spans(text):
            starts.append(start)
            ends.append(end)
            if len(starts) == RECORDS_PER_BLOCK:
                yield _elements(text, first, starts, ends)
                first, starts, ends = first + len(starts), array("q"), array("q")
    except _NotAnArray:
        whole = _whole(text.encode(errors="surrogateescape"))
        if first:
            raise NotOneArray(whole) from None
        yield whole
        return
    if starts:
        yield _elements(text, first, starts, ends)


def _elements(text: str, first: int, starts: array, ends: array) -> Block:
    """The elements of ``text`` at ``starts``/``ends``, the first of them element ``first``
    (from 0) of the array."""
    records = [
        text[start:end].encode(errors="surrogateescape")
        for start, end in zip(starts, ends, strict=True)
    ]
    last = first + len(records)
    return Block(first + 1, np.arange(first + 1, last + 1), records)


def _whole(content: bytes) -> Block:
    if len(content) > MAX_RECORD_BYTES:
        return Block(1, np.ones(1, np.int64), [content[:KEPT_BYTES_OF_LONG_RECORD]], cut=0)
    return Block(1, np.ones(1, np.int64), [content])


class _NotAnArray(Exception):
    """The text is not one JSON array."""


def _element_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where each element of the JSON array ``text`` starts and ends, in order; raises
    `_NotAnArray` where ``text`` turns out not to be one JSON array."""
    decoder = json.JSONDecoder()

    def skip_whitespace(at: int) -> int:
        return _JSON_WHITESPACE.match(text, at).end()

    at = skip_whitespace(0)
    if text[at : at + 1] != "[":
        raise _NotAnArray
    at = skip_whitespace(at + 1)
    if text[at : at + 1] == "]":
        if skip_whitespace(at + 1) != len(text):
            raise _NotAnArray
        return
    while True:
        try:
            _, end = decoder.raw_decode(text, at)
        except RecursionError:
            # nested deeper than Python's scanner goes: that element alone is rejected (the
            # checks find what it is), so its end is found without recursion
            end = _end_of_nested(text, at)
            if end is None:
                raise _NotAnArray from None
        except ValueError:
            raise _NotAnArray from None
        yield at, end
        at = skip_whitespace(end)
        separator = text[at : at + 1]
        at = skip_whitespace(at + 1)
        if separator == "]":
            if at != len(text):
                raise _NotAnArray
            return
        if separator != ",":
            raise _NotAnArray


_OPENS = {"[": "]", "{": "}"}
# what may sit inside a string: anything but the quote and the backslash, in one match
_STRING_BODY = re.compile(r'[^"\\]*')


def _end_of_nested(text: str, at: int) -> int | None:
    """Where the array or object that starts at ``at`` ends, by its brackets alone (strings
    and their escapes skipped): None when they do not close, or close on the wrong kind."""
    expected = []
    position = at
    while position < len(text):
        character = text[position]
        if character in _OPENS:
            expected.append(_OPENS[character])
        elif character in "]}":
            if not expected or expected.pop() != character:
                return None
            if not expected:
                return position + 1
        elif character == '"':
            position = _end_of_string(text, position + 1)
            if position is None:
                return None
            continue
        position += 1
    return None


def _end_of_string(text: str, at: int) -> int | None:
    """Just past the quote that closes the string whose content starts at ``at``."""
    while True:
        at = _STRING_BODY.match(text, at).end()
        if at >= len(text):
            return None
        if text[at] == '"':
            return at + 1
        at += 2  # a backslash and the character it escapes

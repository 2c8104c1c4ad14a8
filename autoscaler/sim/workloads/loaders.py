"""Trace file loaders: Azure LLM inference CSV, Mooncake JSONL, and a plain CSV / JSONL of our own columns.

Formats (see ``../shared/traces/README.md`` for the public traces), each plain or gzip-compressed (``.gz``):
- ``azure``: CSV, header ``TIMESTAMP,ContextTokens,GeneratedTokens``, TIMESTAMP like
  ``2023-11-16 18:15:46.6805900`` (7 fractional digits, which ``datetime.fromisoformat`` rejects before
  Python 3.11, so it is parsed here by hand);
- ``mooncake``: JSON lines ``{"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]}``,
  one chained hash per 512-token prompt block;
- ``csv`` / ``jsonl``: columns or keys ``arrival_s, prompt_tokens, output_tokens[, block_hashes]``; in CSV the
  hashes are space-separated integers in one field.

Every loader shifts time so the first request arrives at t = 0, and rejects a malformed line with a
``TraceError`` whose message is ``FILE:LINE: reason`` (1-based line numbers counting the header), so a user
can jump to the culprit. Rows must already be in time order: a trace whose clock goes backwards is more likely
corrupt than merely unsorted, so it is reported rather than silently reordered.

Parsing is plain stdlib per line, not per-row pydantic, whose cost per row would dominate a large trace.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Literal

import numpy as np

from autoscaler.sim.workloads import trace as trace_mod

__all__ = ["FORMATS", "TraceError", "TraceFormat", "detect_format", "load_trace"]

TraceFormat = Literal["azure", "mooncake", "csv", "jsonl"]
FORMATS: tuple[TraceFormat, ...] = ("azure", "mooncake", "csv", "jsonl")

_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_PLAIN_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
_MOONCAKE_BLOCK_TOKENS = 512
_TIME_OF_DAY = re.compile(r"(\d\d):(\d\d):(\d\d(?:\.\d+)?)")


class TraceError(ValueError):
    """A trace file that cannot be read; the message is ``FILE:LINE: reason``."""


class _LineError(Exception):
    """Raised by a row parser; the row loop adds the file and line number."""


class _Columns:
    """Accumulates rows, enforcing time order and the hash-count rule, then builds the ``Trace``."""

    def __init__(self, *, block_tokens: int) -> None:
        self.block_tokens = block_tokens
        self.arrival: list[float] = []
        self.prompt: list[int] = []
        self.output: list[int] = []
        self.hash_counts: list[int] = []
        self.hashes: list[int] = []

    def add(self, arrival: float, prompt: int, output: int, hashes: list[int] | None) -> None:
        if not math.isfinite(arrival):
            raise _LineError(f"arrival time is not finite: {arrival}")
        if self.arrival and arrival < self.arrival[-1]:
            raise _LineError(
                f"arrival time goes backwards ({arrival} after {self.arrival[-1]}); "
                "rows must be in time order"
            )
        if prompt < 0 or output < 0:
            raise _LineError(f"token counts must be non-negative, got prompt {prompt}, output {output}")
        if hashes is None:
            if self.hash_counts:
                raise _LineError("block hashes missing; earlier rows have them")
        else:
            if self.arrival and not self.hash_counts:
                raise _LineError("block hashes present; earlier rows have none")
            expected = -(-prompt // self.block_tokens)
            if len(hashes) != expected:
                raise _LineError(
                    f"{len(hashes)} block hashes for {prompt} prompt tokens; expected {expected} "
                    f"(one per {self.block_tokens}-token block)"
                )
            self.hashes.extend(hashes)
            self.hash_counts.append(len(hashes))
        self.arrival.append(arrival)
        self.prompt.append(prompt)
        self.output.append(output)

    def build(self, name: str) -> trace_mod.Trace:
        arrival = np.asarray(self.arrival, dtype=np.float64)
        if arrival.size:
            arrival = arrival - arrival[0]
        offsets = hashes = None
        if self.hash_counts:
            offsets = np.concatenate(([0], np.cumsum(self.hash_counts, dtype=np.int64)))
            hashes = np.asarray(self.hashes, dtype=np.int64)
        return trace_mod.Trace(
            name=name,
            arrival_s=arrival,
            prompt_tokens=np.asarray(self.prompt, dtype=np.int64),
            output_tokens=np.asarray(self.output, dtype=np.int64),
            block_offsets=offsets,
            block_hashes=hashes,
            block_tokens=self.block_tokens,
        )


def _int(text: object, what: str) -> int:
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise _LineError(f"{what} must be an integer, got {text!r}")
    try:
        return int(text)
    except ValueError:
        raise _LineError(f"{what} must be an integer, got {text!r}") from None


def _float(text: object, what: str) -> float:
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise _LineError(f"{what} must be a number, got {text!r}")
    try:
        return float(text)
    except ValueError:
        raise _LineError(f"{what} must be a number, got {text!r}") from None


def _int_list(value: object, what: str) -> list[int]:
    if not isinstance(value, list):
        raise _LineError(f"{what} must be a list of integers, got {type(value).__name__}")
    if not all(type(item) is int for item in value):
        raise _LineError(f"{what} must hold only integers")
    return value


class _AzureClock:
    """Parses ``YYYY-MM-DD HH:MM:SS[.fffffff]`` to seconds, relative to the first row's date.

    Keeping whole days apart from the seconds of the day keeps sub-microsecond precision in float64.
    """

    def __init__(self) -> None:
        self._day0: int | None = None
        self._days: dict[str, int] = {}

    def seconds(self, text: str) -> float:
        date_text, _, time_text = text.strip().partition(" ")
        day = self._days.get(date_text)
        if day is None:
            try:
                day = datetime.date.fromisoformat(date_text).toordinal()
            except ValueError:
                raise _LineError(f"bad TIMESTAMP date {date_text!r} (expected YYYY-MM-DD)") from None
            self._days[date_text] = day
        if self._day0 is None:
            self._day0 = day
        match = _TIME_OF_DAY.fullmatch(time_text)
        if match is None:
            raise _LineError(f"bad TIMESTAMP time {time_text!r} (expected HH:MM:SS.fffffff)")
        hours, minutes, secs = int(match[1]), int(match[2]), float(match[3])
        if hours > 23 or minutes > 59 or secs >= 61:
            raise _LineError(f"TIMESTAMP time {time_text!r} is out of range")
        return (day - self._day0) * 86400.0 + hours * 3600 + minutes * 60 + secs


def _header_indices(header: list[str], required: tuple[str, ...]) -> dict[str, int]:
    names = [name.strip() for name in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise _LineError(f"header lacks column(s) {', '.join(missing)}; found {', '.join(names)}")
    return {name: names.index(name) for name in names}


def _rows_csv(
    lines: Iterator[str], parse: Callable[[list[str]], None], header: Callable[[list[str]], None]
) -> Iterator[int]:
    """Feeds parsed CSV rows to ``parse`` (after ``header``), yielding each line number before parsing it."""
    reader = csv.reader(lines)
    for row in reader:
        yield reader.line_num
        if reader.line_num == 1:
            header(row)
        elif row:
            parse(row)


def _load_azure(lines: Iterator[str], columns: _Columns) -> Iterator[int]:
    clock = _AzureClock()
    index: dict[str, int] = {}

    def header(row: list[str]) -> None:
        index.update(_header_indices(row, _AZURE_COLUMNS))

    def parse(row: list[str]) -> None:
        if len(row) != len(index):
            raise _LineError(f"expected {len(index)} fields, got {len(row)}")
        columns.add(
            clock.seconds(row[index["TIMESTAMP"]]),
            _int(row[index["ContextTokens"]], "ContextTokens"),
            _int(row[index["GeneratedTokens"]], "GeneratedTokens"),
            None,
        )

    return _rows_csv(lines, parse, header)


def _load_plain_csv(lines: Iterator[str], columns: _Columns) -> Iterator[int]:
    index: dict[str, int] = {}

    def header(row: list[str]) -> None:
        index.update(_header_indices(row, _PLAIN_COLUMNS))

    def parse(row: list[str]) -> None:
        if len(row) != len(index):
            raise _LineError(f"expected {len(index)} fields, got {len(row)}")
        hashes = None
        if "block_hashes" in index:
            hashes = [_int(item, "block_hashes item") for item in row[index["block_hashes"]].split()]
        columns.add(
            _float(row[index["arrival_s"]], "arrival_s"),
            _int(row[index["prompt_tokens"]], "prompt_tokens"),
            _int(row[index["output_tokens"]], "output_tokens"),
            hashes,
        )

    return _rows_csv(lines, parse, header)


def _json_rows(lines: Iterator[str], parse: Callable[[dict[str, object]], None]) -> Iterator[int]:
    for number, line in enumerate(lines, start=1):
        yield number
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise _LineError(f"invalid JSON: {error.msg} (column {error.colno})") from None
        except RecursionError:  # the decoder recurses per level: a row nested 100k deep exhausts the stack
            raise _LineError("invalid JSON: nested too deeply") from None
        if not isinstance(record, dict):
            raise _LineError(f"expected a JSON object, got {type(record).__name__}")
        parse(record)


def _field(record: dict[str, object], key: str) -> object:
    try:
        return record[key]
    except KeyError:
        raise _LineError(f"missing key {key!r}") from None


def _load_mooncake(lines: Iterator[str], columns: _Columns) -> Iterator[int]:
    def parse(record: dict[str, object]) -> None:
        columns.add(
            _float(_field(record, "timestamp"), "timestamp") / 1000.0,
            _int(_field(record, "input_length"), "input_length"),
            _int(_field(record, "output_length"), "output_length"),
            _int_list(_field(record, "hash_ids"), "hash_ids"),
        )

    return _json_rows(lines, parse)


def _load_plain_jsonl(lines: Iterator[str], columns: _Columns) -> Iterator[int]:
    def parse(record: dict[str, object]) -> None:
        hashes = record.get("block_hashes")
        columns.add(
            _float(_field(record, "arrival_s"), "arrival_s"),
            _int(_field(record, "prompt_tokens"), "prompt_tokens"),
            _int(_field(record, "output_tokens"), "output_tokens"),
            None if hashes is None else _int_list(hashes, "block_hashes"),
        )

    return _json_rows(lines, parse)


_PARSERS: dict[TraceFormat, Callable[[Iterator[str], _Columns], Iterator[int]]] = {
    "azure": _load_azure,
    "mooncake": _load_mooncake,
    "csv": _load_plain_csv,
    "jsonl": _load_plain_jsonl,
}


def _open_text(path: Path) -> IO[str]:
    """The file as text; a ``.gz`` one decompressed on the fly (ServeGen's Azure-format CSVs are gzipped)."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def detect_format(path: Path) -> TraceFormat:
    """Guesses the format from the extension (under any ``.gz``) and the first line (header or first JSON
    object)."""
    with _open_text(path) as handle:
        first = handle.readline()
    suffix = (path.with_suffix("") if path.suffix.lower() == ".gz" else path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "mooncake" if '"hash_ids"' in first or '"input_length"' in first else "jsonl"
    if suffix == ".csv":
        return "azure" if "TIMESTAMP" in first else "csv"
    raise TraceError(f"{path}:1: cannot tell the trace format from the extension; name the format")


def load_trace(
    path: Path | str,
    *,
    format: TraceFormat | Literal["auto"] = "auto",
    name: str | None = None,
    block_tokens: int = _MOONCAKE_BLOCK_TOKENS,
) -> trace_mod.Trace:
    """Reads a trace file; ``block_tokens`` is the tokens per hash block (Mooncake's 512 by default).

    Raises ``TraceError`` (``FILE:LINE: reason``) for an unreadable, malformed or empty file.
    """
    path = Path(path)
    columns = _Columns(block_tokens=block_tokens)
    line = 0
    try:
        kind = detect_format(path) if format == "auto" else format
        with _open_text(path) as handle:
            # Each parser yields a line's number before parsing it, so on failure ``line`` names the culprit.
            for number in _PARSERS[kind](handle, columns):
                line = number
    except _LineError as error:
        raise TraceError(f"{path}:{line}: {error}") from None
    except UnicodeDecodeError as error:
        raise TraceError(f"{path}:{line + 1}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise TraceError(f"{path}: cannot read: {error.strerror or error}") from None
    except EOFError:
        raise TraceError(f"{path}:{line}: the compressed file ends early (truncated)") from None
    if not columns.arrival:
        raise TraceError(f"{path}:{line}: no requests in the trace")
    return columns.build(name if name is not None else path.stem)

#!/usr/bin/env python3
"""Download the public LLM request traces that the what-if scenarios replay.

    python simulations/fetch_traces.py                 # both traces into simulations/traces/
    python simulations/fetch_traces.py --dest DIR      # elsewhere
    python simulations/fetch_traces.py --only mooncake # one of them

The traces are not part of this project (their licences ask for attribution, and they are large); this script
fetches them from their public sources. Each download goes to a temporary file, is checked for its published
row count, and only then replaces the target, so an interrupted or truncated download never passes for a
trace. Existing files with the right row count are kept unless --force is given.

Sources and licences:
- Azure LLM inference trace, conversation (Azure/AzurePublicDataset, CC-BY-4.0; cite Patel et al.,
  "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024);
- Mooncake conversation trace (kvcache-ai/Mooncake, Apache-2.0; cite Qin et al., "Mooncake: Trading More
  Storage for Less Computation", FAST 2025).

Standard library only, so it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

DEFAULT_DEST = Path(__file__).resolve().parent / "traces"
_CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Source:
    key: str
    url: str
    filename: str
    rows: int  # data rows, the header excluded
    header_lines: int
    licence: str


SOURCES = (
    Source(
        key="azure",
        url="https://raw.githubusercontent.com/Azure/AzurePublicDataset/master/data/AzureLLMInferenceTrace_conv.csv",
        filename="AzureLLMInferenceTrace_conv.csv",
        rows=19_366,
        header_lines=1,
        licence="CC-BY-4.0 (cite Patel et al., Splitwise, ISCA 2024)",
    ),
    Source(
        key="mooncake",
        url="https://raw.githubusercontent.com/kvcache-ai/Mooncake/main/FAST25-release/traces/conversation_trace.jsonl",
        filename="conversation_trace.jsonl",
        rows=12_031,
        header_lines=0,
        licence="Apache-2.0 (cite Qin et al., Mooncake, FAST 2025)",
    ),
)


class FetchError(RuntimeError):
    """A download that failed or does not look like the published trace."""


def count_rows(path: Path, *, header_lines: int) -> int:
    """Non-blank lines after the header."""
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(lines - header_lines, 0)


def _progress(label: str, done: int, total: int | None) -> None:
    if total:
        message = f"\r  {label}: {done / 1e6:6.1f} / {total / 1e6:.1f} MB ({100 * done / total:3.0f} %)"
    else:
        message = f"\r  {label}: {done / 1e6:6.1f} MB"
    print(message, end="", file=sys.stderr, flush=True)


def download(url: str, target: Path, *, label: str, timeout_s: float = 60.0) -> None:
    """Streams ``url`` to ``target`` with progress on stderr."""
    request = urllib.request.Request(url, headers={"User-Agent": "inference-autoscaler fetch_traces"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, target.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                _progress(label, done, total)
    except (urllib.error.URLError, OSError) as error:
        raise FetchError(f"{label}: download from {url} failed: {error}") from None
    finally:
        print(file=sys.stderr)


def fetch(source: Source, dest: Path, *, force: bool = False) -> Path:
    """Downloads ``source`` into ``dest`` unless a complete copy is there; returns the file's path."""
    target = dest / source.filename
    if not force and target.is_file() and count_rows(target, header_lines=source.header_lines) == source.rows:
        print(f"{source.key}: {target} is present with {source.rows:,} rows; kept (use --force to refetch)")
        return target
    dest.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=dest, prefix=f".{source.filename}.", suffix=".part")
    os.close(handle)
    partial = Path(temporary)
    try:
        print(f"{source.key}: fetching {source.url}")
        download(source.url, partial, label=source.key)
        rows = count_rows(partial, header_lines=source.header_lines)
        if rows != source.rows:
            raise FetchError(
                f"{source.key}: got {rows:,} rows, expected {source.rows:,}; "
                "the download is truncated or the source changed (nothing was written)"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    print(f"{source.key}: wrote {target} ({source.rows:,} rows; licence {source.licence})")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Download the public Azure and Mooncake LLM request traces for the what-if scenarios.",
        epilog="Scenarios name traces by path; point them at the --dest folder.",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=DEFAULT_DEST,
        help=f"folder to write the traces to (default: {DEFAULT_DEST})",
    )
    parser.add_argument(
        "--only", choices=[source.key for source in SOURCES], action="append", help="fetch only this trace"
    )
    parser.add_argument("--force", action="store_true", help="download even if a complete copy is present")
    args = parser.parse_args(argv)
    chosen = [source for source in SOURCES if args.only is None or source.key in args.only]
    failures = 0
    for source in chosen:
        try:
            fetch(source, args.dest, force=args.force)
        except FetchError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

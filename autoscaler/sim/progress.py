"""A progress bar on a text stream (stderr), one line redrawn in place; no dependency.

Runs progress side by side (policies simulated in parallel processes report as they go), so the line shows
them all: an overall bar, then each run's percentage. Drawn on a terminal only; on a stream that is not a
terminal (a log file, CI) it writes one line per finished run instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``bar(label, fraction)`` records a run's progress and redraws
    ``[#####.....]  50%  ours 80%  static done  clairvoyant ...``; ``close()`` ends the line.

    ``labels``: the runs expected, so the overall bar counts the ones not started yet (others join as
    they first report).
    """

    def __init__(self, stream: TextIO, *, labels: Iterable[str] = (), width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._percent: dict[str, int | None] = dict.fromkeys(labels)
        self._drawn = ""
        self._live = stream.isatty()

    def __call__(self, label: str, fraction: float) -> None:
        percent = max(0, min(100, int(fraction * 100)))
        before = self._percent.get(label)
        if before == percent:
            return
        self._percent[label] = percent
        if not self._live:
            if percent == 100:
                self._stream.write(f"{label}: done\n")
                self._stream.flush()
            return
        line = self._line()
        if line != self._drawn:
            # padded to the previous line's length: a shorter line must not leave its tail behind
            self._stream.write("\r" + line.ljust(len(self._drawn)))
            self._stream.flush()
            self._drawn = line

    def _line(self) -> str:
        shown = [p or 0 for p in self._percent.values()]
        overall = sum(shown) // len(shown)
        filled = self._width * overall // 100
        runs = "  ".join(
            f"{label} {'...' if p is None else 'done' if p == 100 else f'{p}%'}"
            for label, p in self._percent.items()
        )
        line = f"[{'#' * filled}{'.' * (self._width - filled)}] {overall:3d}%  {runs}"
        columns = shutil.get_terminal_size(fallback=(120, 24)).columns
        return line[: max(columns - 1, self._width + 6)]

    def close(self) -> None:
        if self._drawn and self._live:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = ""

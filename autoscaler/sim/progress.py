"""A progress bar on a text stream (stderr), one line redrawn in place; no dependency.

On a stream that is not a terminal (a log file, CI) it writes one line per finished label instead.
"""

from __future__ import annotations

from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``bar(label, fraction)`` redraws ``label [#####.....]  50%``; ``close()`` ends the line."""

    def __init__(self, stream: TextIO, *, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._shown: tuple[str, int] | None = None
        self._live = stream.isatty()

    def __call__(self, label: str, fraction: float) -> None:
        percent = max(0, min(100, int(fraction * 100)))
        if self._shown == (label, percent):
            return
        if not self._live:
            if percent == 100:
                self._stream.write(f"{label}: done\n")
                self._stream.flush()
            self._shown = (label, percent)
            return
        if self._shown is not None and self._shown[0] != label:
            self._stream.write("\n")
        self._shown = (label, percent)
        filled = self._width * percent // 100
        bar = "#" * filled + "." * (self._width - filled)
        self._stream.write(f"\r{label:<10} [{bar}] {percent:3d}%")
        self._stream.flush()

    def close(self) -> None:
        if self._shown is not None and self._live:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = None

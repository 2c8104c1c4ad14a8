"""Accelerator datasheets as data (``models/accelerators.yaml``): peak FLOP/s per dtype, memory, interconnect.

Every figure keeps the vendor document it comes from, so a derived profile can say where each of its
numbers starts. Pure: the caller reads the YAML and passes the mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = ["Accelerator", "AcceleratorError", "Figure", "find_accelerator", "parse_accelerators"]


class AcceleratorError(ValueError):
    """An unknown accelerator or a malformed datasheet entry (one line)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    value: float
    source: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Accelerator:
    name: str
    aliases: tuple[str, ...]
    peak_flops: Mapping[str, Figure]  # dtype -> dense FLOP/s
    memory_bandwidth: Figure  # bytes/s
    memory_gib: Figure
    interconnect: Figure  # bytes/s per direction per GPU

    def compute(self, dtype: str) -> Figure:
        """The dense peak for ``dtype``; bf16's where the chip has no tensor cores for it (weight-only)."""
        return self.peak_flops.get(dtype) or self.peak_flops["bf16"]


def _figure(entry: object, where: str, *, upper: float) -> Figure:
    if not isinstance(entry, Mapping) or "value" not in entry or "source" not in entry:
        raise AcceleratorError(f"{where}: expected {{value, source}}")
    value = entry["value"]
    source = entry["source"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < upper:
        raise AcceleratorError(f"{where}: value must be a positive number below {upper:g}, got {value!r}")
    if not isinstance(source, str) or len(source) < 3:
        raise AcceleratorError(f"{where}: every figure needs its source")
    return Figure(value=float(value), source=source)


def parse_accelerators(data: Mapping[str, object]) -> dict[str, Accelerator]:
    """Validate the datasheet mapping (bounds: nothing above 1e17 FLOP/s, 1e14 B/s or 1e4 GiB)."""
    catalog: dict[str, Accelerator] = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise AcceleratorError(f"{name}: expected a mapping")
        flops = entry.get("peak_flops")
        if not isinstance(flops, Mapping) or "bf16" not in flops:
            raise AcceleratorError(f"{name}.peak_flops: needs at least bf16")
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise AcceleratorError(f"{name}.aliases: expected a list of names")
        catalog[name] = Accelerator(
            name=name,
            aliases=tuple(aliases),
            peak_flops={
                str(dtype): _figure(fig, f"{name}.peak_flops.{dtype}", upper=1e17)
                for dtype, fig in flops.items()
            },
            memory_bandwidth=_figure(
                entry.get("memory_bandwidth_bytes_per_s"), f"{name}.memory_bandwidth_bytes_per_s", upper=1e14
            ),
            memory_gib=_figure(entry.get("memory_gib"), f"{name}.memory_gib", upper=1e4),
            interconnect=_figure(
                entry.get("interconnect_bytes_per_s"), f"{name}.interconnect_bytes_per_s", upper=1e14
            ),
        )
    return catalog


def find_accelerator(catalog: Mapping[str, Accelerator], name: str) -> Accelerator:
    """By name or alias, case-insensitively; ``AcceleratorError`` listing the known ones otherwise."""
    wanted = name.strip().lower()
    for accelerator in catalog.values():
        if wanted == accelerator.name.lower() or wanted in (a.lower() for a in accelerator.aliases):
            return accelerator
    known = ", ".join(sorted(catalog))
    raise AcceleratorError(f"unknown GPU {name!r} (known: {known})")

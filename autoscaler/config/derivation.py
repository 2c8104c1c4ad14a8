"""Reading what ``autoscaler profile derive`` derives from: config.json, datasheets, fitted efficiencies.

``models/accelerators.yaml`` (datasheets), ``models/efficiency.yaml`` (efficiencies fitted per accelerator)
and ``models/architectures.yaml`` (architecture numbers, from model cards, of models whose config.json is not
at hand) live beside the profiles; a config.json is read from the path given. Every failure is a
``DerivationError`` with one line naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from autoscaler.config.profiles import models_dir
from autoscaler.profiles.accelerators import (
    Accelerator,
    AcceleratorError,
    find_accelerator,
    parse_accelerators,
)
from autoscaler.profiles.derive import Calibration
from autoscaler.profiles.roofline import Efficiency

__all__ = [
    "DerivationError",
    "load_accelerator",
    "load_calibration",
    "load_config",
    "parse_calibrations",
]

_TERMS = ("first_token_s", "first_token_steps", "activation_reserve_gib")


class DerivationError(ValueError):
    """A missing or malformed input to the derivation (one line)."""


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DerivationError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise DerivationError(f"{path}: not valid YAML") from exc


def load_config(ref: str | Path) -> tuple[dict[str, Any], str]:
    """A config.json mapping and its provenance: a file, or a model named in ``models/architectures.yaml``."""
    path = Path(ref)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DerivationError(f"{path}: cannot read a JSON config: {exc}") from exc
        if not isinstance(data, dict):
            raise DerivationError(f"{path}: a config.json must be a JSON object")
        return data, f"{path.name} ({path})"
    cards = _yaml(models_dir() / "architectures.yaml") or {}
    entry = cards.get(str(ref))
    if not isinstance(entry, Mapping) or not isinstance(entry.get("config"), Mapping):
        raise DerivationError(f"{ref}: no such config.json file, nor a model in models/architectures.yaml")
    return dict(
        entry["config"]
    ), f"architecture numbers of {ref} from {entry.get('source', 'its model card')}"


def load_accelerator(name: str) -> Accelerator:
    try:
        return find_accelerator(parse_accelerators(_yaml(models_dir() / "accelerators.yaml") or {}), name)
    except AcceleratorError as exc:
        raise DerivationError(str(exc)) from exc


def _calibration(name: str, terms: Mapping[str, Any], source: str) -> Calibration:
    values = {key: float(terms[key]["value"]) for key in terms}
    if any(len(str(terms[key]["source"])) < 3 for key in terms):
        raise ValueError("every term needs its source")
    return Calibration(
        accelerator=name,
        efficiency=Efficiency(**{k: v for k, v in values.items() if k not in _TERMS}),
        first_token_s=values["first_token_s"],
        first_token_steps=values["first_token_steps"],
        activation_reserve_gib=values["activation_reserve_gib"],
        source=source,
    )


def parse_calibrations(
    data: Mapping[str, Any], *, where: str, block: str = "terms"
) -> dict[str, Calibration]:
    """Validate ``efficiency.yaml``: each accelerator's ``block`` (terms or prior), or ``same_as``."""
    out: dict[str, Calibration] = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping) or "same_as" in entry:
            continue
        source = str(entry.get("source", where)) if block == "terms" else f"prior of {name}"
        try:
            out[name] = _calibration(name, entry[block], source)
        except (KeyError, TypeError, ValueError) as exc:
            raise DerivationError(f"{where}: {name}.{block}: bad efficiency terms: {exc}") from exc
    for name, entry in data.items():
        if isinstance(entry, Mapping) and "same_as" in entry:
            borrowed = entry["same_as"]
            if borrowed not in out:
                raise DerivationError(f"{where}: {name}: same_as {borrowed!r} has no {block}")
            out[name] = dataclasses.replace(out[borrowed], source=f"{borrowed}'s, {entry.get('source', '')}")
    return out


def load_calibration(accelerator: Accelerator, *, block: str = "terms") -> Calibration:
    """The accelerator's fitted efficiencies (``block="prior"``: those known before any serving run)."""
    path = models_dir() / "efficiency.yaml"
    calibrations = parse_calibrations(_yaml(path) or {}, where=str(path), block=block)
    if accelerator.name not in calibrations:
        raise DerivationError(f"{path}: no efficiencies for {accelerator.name}")
    return calibrations[accelerator.name]

"""Loading performance profiles from ``models/``.

A profile that does not validate fails with ``ProfileError``, whose message names the file and each
offending field (``models/x.yaml: decode.per_sequence_s.value: Input should be greater than or equal to 0``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import yaml

from autoscaler.profiles.schema import Profile


class ProfileError(ValueError):
    """A profile file that is missing, unreadable or invalid."""


def models_dir() -> Path:
    """Where the shipped profiles live: ``$AUTOSCALER_MODELS_DIR`` or the checkout's ``models/``."""
    override = os.environ.get("AUTOSCALER_MODELS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "models"


def resolve_profile_path(ref: str | Path) -> Path:
    """A path as given, or a name relative to ``models/`` with or without ``.yaml``."""
    candidates = [Path(ref), models_dir() / ref, models_dir() / f"{ref}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ProfileError(f"{ref}: no such profile file (looked in . and {models_dir()})")


def load_profile(ref: str | Path) -> Profile:
    path = resolve_profile_path(ref)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a YAML mapping, got {type(data).__name__}")
    try:
        return Profile.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ProfileError(f"{path}: invalid profile: {problems}") from exc


def shipped_profiles() -> list[Path]:
    return sorted(models_dir().glob("*/*.yaml"))

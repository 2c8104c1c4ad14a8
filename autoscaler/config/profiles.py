"""Loading performance profiles from ``models/``.

A profile that does not validate fails with ``ProfileError``, whose message names the file and each
offending field (``models/x.yaml: decode.per_sequence_s.value: Input should be greater than or equal to 0``).

Two doors. ``load_profile`` (the CLI) takes a path or a name: its user picks files on their own machine.
``load_named_profile`` (a custom resource's ``spec.profile.name``) takes only a ``<model>/<hardware>`` name
matching ``NAME_PATTERN`` (the CRD states the same pattern) and reads only a file inside the profile
directory: whoever may create a resource must not make the controller read ``../../etc/passwd``. Neither
door quotes a file's text in its errors (a YAML error gives the line and the parser's problem, not the
line's content), since the controller's errors end up in status conditions, Events and logs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pydantic
import yaml

from autoscaler.config import yaml_errors
from autoscaler.profiles.schema import Profile


class ProfileError(ValueError):
    """A profile file that is missing, unreadable or invalid."""


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}/[A-Za-z0-9][A-Za-z0-9._-]{0,126}$"
"""``<model>/<hardware>``, optionally ending in ``.yaml``: two path segments, neither starting with a dot, so
no ``..``, no absolute path, no hidden file."""


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


def resolve_named_profile(name: str) -> Path:
    """The file a profile name denotes inside the profile directory; refuses anything else unread."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ProfileError(f"profile name {name[:80]!r} is not <model>/<hardware> from the profile directory")
    root = models_dir().resolve()
    for candidate in (root / name, root / f"{name}.yaml"):
        # a link inside the directory must not lead out of it either
        if candidate.resolve().is_relative_to(root) and candidate.is_file():
            return candidate
    raise ProfileError(f"{name}: no such profile in the profile directory")


def load_named_profile(name: str) -> Profile:
    """A profile by name from the profile directory only (what a custom resource may ask for)."""
    return _parse(resolve_named_profile(name))


def load_profile(ref: str | Path) -> Profile:
    """A profile by path or by name (the CLI, whose user names their own files)."""
    return _parse(resolve_profile_path(ref))


def _parse(path: Path) -> Profile:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {yaml_errors.describe(exc)}") from exc
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

"""Shipped profiles load; a bad profile fails naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoscaler.config import profiles

REQUIRED = {
    "llama-3.1-8b/h100-tp1",
    "llama-3.1-8b/a100-tp1",
    "llama-3.1-70b/h100-tp4",
    "qwen3-32b/h100-tp2",
}


def test_required_profiles_ship_and_load() -> None:
    shipped = {f"{p.parent.name}/{p.stem}" for p in profiles.shipped_profiles()}
    assert shipped >= REQUIRED
    for ref in REQUIRED:
        profile = profiles.load_profile(ref)
        assert profile.gpus_per_replica == profile.tensor_parallel


def test_worked_figures_of_the_reference() -> None:
    """performance-and-models.md 4.3: 12 sequences of 12.2k tokens decode in about 15 ms on 8B/H100."""
    profile = profiles.load_profile("llama-3.1-8b/h100-tp1")
    assert profile.decode_step_time(12, 12_200) == pytest.approx(0.015, rel=0.05)
    assert profile.kv_capacity_tokens == 432_000


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["decode"]["per_sequence_s"].update(value=-1), "decode.per_sequence_s.value"),
        (lambda d: d["kv_cache"].pop("capacity_tokens"), "kv_cache.capacity_tokens"),
        (lambda d: d["step"]["base_s"].update(kind="guessed"), "step.base_s.kind"),
        (lambda d: d.update(tensor_parallel="four"), "tensor_parallel"),
    ],
    ids=["negative number", "missing field", "unknown provenance", "wrong type"],
)
def test_bad_profile_names_file_and_field(tmp_path: Path, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(profiles.resolve_profile_path("llama-3.1-8b/h100-tp1").read_text())
    mutate(data)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(profiles.ProfileError) as err:
        profiles.load_profile(bad)
    assert str(bad) in str(err.value)
    assert field in str(err.value)


def test_missing_profile_is_a_clear_error() -> None:
    with pytest.raises(profiles.ProfileError, match="no such profile"):
        profiles.load_profile("does/not-exist")


# -- names from a custom resource: the profile directory only, nothing read outside it, no file text quoted --


@pytest.fixture
def profile_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A profile directory with one good profile, a secret beside it and a link leading out to the secret."""
    models = tmp_path / "models"
    (models / "m").mkdir(parents=True)
    shipped = profiles.resolve_profile_path("llama-3.1-8b/h100-tp1")
    (models / "m" / "h100-tp1.yaml").write_text(shipped.read_text())
    (tmp_path / "secret.yaml").write_text("password: hunter2\n")
    (models / "m" / "link.yaml").symlink_to(tmp_path / "secret.yaml")
    monkeypatch.setenv("AUTOSCALER_MODELS_DIR", str(models))
    return models


def test_a_name_in_the_profile_directory_loads(profile_dir: Path) -> None:
    assert profiles.load_named_profile("m/h100-tp1").tensor_parallel == 1
    assert profiles.load_named_profile("m/h100-tp1.yaml").tensor_parallel == 1


@pytest.mark.parametrize(
    "name",
    ["../secret", "../../etc/passwd", "/etc/passwd", "m/../../secret", "m/.hidden", "secret", "m/link"],
    ids=["up one", "up two", "absolute", "down then up", "hidden file", "one segment", "link out"],
)
def test_a_name_outside_the_profile_directory_is_refused_unread(
    profile_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(self: Path, *args: object, **kwargs: object) -> str:
        raise AssertionError(f"read {self}")

    monkeypatch.setattr(Path, "read_text", no_reading)
    with pytest.raises(profiles.ProfileError) as err:
        profiles.load_named_profile(name)
    assert "hunter2" not in str(err.value)


def test_a_yaml_error_names_the_line_not_its_text(profile_dir: Path) -> None:
    (profile_dir / "m" / "broken.yaml").write_text("name: ok\ntoken: sk-live-123: x\n")
    with pytest.raises(profiles.ProfileError) as err:
        profiles.load_named_profile("m/broken")
    message = str(err.value)
    assert "line 2" in message and "sk-live-123" not in message
    assert len(message.splitlines()) == 1

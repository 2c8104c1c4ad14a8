"""``autoscaler profile`` against an engine with a known time model, over real HTTP."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.config.profiles import load_profile
from autoscaler.profiles.schema import ProvenanceKind
from tests.cli.profile_fake_engine import BLOCK_SIZE, BYTES_PER_TOKEN, MODEL, NUM_BLOCKS, TimedEngine, running

PLAN = [
    "--accelerator", "cpu", "--max-num-seqs", "4", "--max-num-batched-tokens", "1024",
    "--prompt-lengths", "8,64,128,200", "--repeats", "1",
    "--batch-sizes", "1,2,4", "--decode-prompt-lengths", "16,128", "--decode-tokens", "8",
]  # fmt: skip


def test_writes_a_measured_profile_that_recovers_the_engine_time_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = TimedEngine()
    out = tmp_path / "tiny" / "cpu-tp1.yaml"
    with running(engine) as url:
        assert (
            main(
                [
                    "profile",
                    "--endpoint",
                    url,
                    *PLAN,
                    "--out",
                    str(out),
                    "--samples",
                    str(tmp_path / "s.json"),
                ]
            )
            == 0
        )
    assert len(engine.arrivals) == 2 + 4 + 2 * (1 + 2 + 4)  # warm-up, prefill, decode: bounded by the plan
    profile = load_profile(out)
    assert profile.model == "fake" and profile.accelerator == "cpu"
    assert profile.step.base_s.value == pytest.approx(MODEL["base"], rel=0.02)
    assert profile.prefill.per_token_s.value == pytest.approx(MODEL["per_token"], rel=0.05)
    assert profile.decode.per_sequence_s.value == pytest.approx(MODEL["per_seq"], rel=0.05)
    assert profile.decode.per_context_token_s.value == pytest.approx(MODEL["per_ctx"], rel=0.05)
    assert profile.kv_capacity_tokens == NUM_BLOCKS * BLOCK_SIZE
    assert profile.block_size == BLOCK_SIZE
    assert profile.kv_cache.bytes_per_token.value == BYTES_PER_TOKEN
    assert profile.step.base_s.kind is ProvenanceKind.MEASURED
    assert url in profile.step.base_s.source
    samples = json.loads((tmp_path / "s.json").read_text())
    assert [s["new_tokens"] for s in samples["prefill"]] == [8, 64, 128, 200]
    assert [s["batch"] for s in samples["decode"]] == [1, 2, 4, 1, 2, 4]
    printed = capsys.readouterr().out
    assert f"{len(engine.arrivals)} requests" in printed  # the plan announces what it will send
    assert "timings from the engine" in printed and f"wrote {out}" in printed


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_endpoint_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["profile", "--endpoint", _refused_url(), *PLAN, "--out", str(tmp_path / "p.yaml")])
    assert code == 1
    assert "autoscaler profile: error:" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


def test_batches_beyond_the_engine_limit_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running(TimedEngine()) as url:
        args = [*PLAN, "--batch-sizes", "8", "--out", str(tmp_path / "p.yaml")]
        assert main(["profile", "--endpoint", url, *args]) == 2
    assert "--max-num-seqs" in capsys.readouterr().err

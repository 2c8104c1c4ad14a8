"""Chained block hashes: precise mode reproduces vLLM; approximate mode is chained, stable, block-exact."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autoscaler.routing import hashing

TOKENS = list(range(100, 132))  # dependencies.md "Block hashing": tokens 100..131 at block size 16


@pytest.mark.parametrize(
    ("algo", "expected", "none_hash_hex"),
    [
        (hashing.PreciseAlgo.SHA256, [15126711022707342677, 3356471519746799895], "066b1e89"),
        (hashing.PreciseAlgo.SHA256_CBOR, [10428775992902877628, 8101442038445348984], "9bd96a48"),
    ],
    ids=["sha256 over pickle", "sha256 over canonical cbor"],
)
def test_precise_hashes_match_vllm(
    algo: hashing.PreciseAlgo, expected: list[int], none_hash_hex: str
) -> None:
    assert hashing.none_hash(algo).hex().startswith(none_hash_hex)
    assert hashing.precise_block_hashes(TOKENS, block_tokens=16, algo=algo) == expected


def test_precise_hashes_skip_the_partial_block_and_depend_on_the_seed() -> None:
    assert len(hashing.precise_block_hashes([*TOKENS, 1, 2, 3], block_tokens=16)) == 2
    seeded = hashing.precise_block_hashes(TOKENS, block_tokens=16, seed="0")
    assert seeded != hashing.precise_block_hashes(TOKENS, block_tokens=16)


def test_precise_extra_keys_change_only_their_block_and_what_follows() -> None:
    plain = hashing.precise_block_digests(TOKENS, block_tokens=16)
    salted = hashing.precise_block_digests(TOKENS, block_tokens=16, extra_keys=[None, ("cache_salt", "s")])
    assert salted[0] == plain[0]
    assert salted[1] != plain[1]


def test_approximate_token_hashes_are_chained() -> None:
    a = hashing.approximate_token_hashes([*range(64), *range(1000, 1064)], block_tokens=32)
    b = hashing.approximate_token_hashes([*range(64), *range(2000, 2064)], block_tokens=32)
    c = hashing.approximate_token_hashes([*range(1, 65), *range(1000, 1064)], block_tokens=32)
    assert len(a) == 4
    assert a[:2] == b[:2] and a[2:] != b[2:]  # shared prefix, then divergence
    assert set(a).isdisjoint(c)  # a different first block changes every later hash
    assert all(0 <= h < 2**64 for h in a)


def test_approximate_hashes_are_stable_across_processes() -> None:
    """Unlike ``hash()`` of text, these do not depend on PYTHONHASHSEED: replicas and reruns agree."""
    script = (
        "from autoscaler.routing import hashing as h;"
        "print(h.approximate_token_hashes(range(8), block_tokens=4),"
        " h.approximate_text_hashes('abcd' * 4, block_chars=8))"
    )
    expected = "[13869107101669235202, 17758950562940244799] [5430950772673610517, 121767421845440041]"
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected


def test_approximate_text_hashes_only_full_chunks() -> None:
    assert hashing.approximate_text_hashes("x" * 255, block_chars=128) == hashing.approximate_text_hashes(
        "x" * 128, block_chars=128
    )
    assert hashing.approximate_text_hashes("short", block_chars=128) == []
    with pytest.raises(ValueError, match="positive"):
        hashing.approximate_text_hashes("x", block_chars=0)

"""Loaders read the public traces faithfully and reject malformed lines naming the file, line and reason."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from autoscaler.sim.workloads import loaders, trace


def test_azure_conversation_trace_matches_published_statistics(azure_trace: trace.Trace) -> None:
    assert len(azure_trace) == 19_366
    assert azure_trace.arrival_s[0] == 0.0
    assert azure_trace.duration_s == pytest.approx(3_502, abs=1)
    assert azure_trace.mean_rate == pytest.approx(5.53, abs=0.01)
    assert azure_trace.prompt_tokens.mean() == pytest.approx(1_155, abs=1)
    assert np.median(azure_trace.prompt_tokens) == 1_020
    assert azure_trace.output_tokens.mean() == pytest.approx(211, abs=1)
    assert not azure_trace.has_hashes
    gaps = np.diff(azure_trace.arrival_s)
    assert gaps.std() / gaps.mean() == pytest.approx(1.09, abs=0.02)


def test_azure_fractional_seconds_keep_seven_digits(azure_trace: trace.Trace) -> None:
    # 18:15:46.6805900 then 18:15:50.9951690 (the file's first two rows)
    assert azure_trace.arrival_s[1] == pytest.approx(4.314579, abs=1e-7)


def test_mooncake_conversation_trace_matches_published_statistics(mooncake_trace: trace.Trace) -> None:
    assert len(mooncake_trace) == 12_031
    assert mooncake_trace.mean_rate == pytest.approx(3.40, abs=0.01)
    assert mooncake_trace.prompt_tokens.mean() == pytest.approx(12_035, abs=1)
    assert np.median(mooncake_trace.prompt_tokens) == 6_909
    assert mooncake_trace.output_tokens.mean() == pytest.approx(343, abs=1)
    assert mooncake_trace.block_tokens == 512
    assert mooncake_trace.block_hashes is not None
    assert mooncake_trace.block_hashes.size == 288_500
    assert list(mooncake_trace.hashes(0)) == list(range(14))
    assert mooncake_trace.hashes(1)[0] == 0


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZURE_ROW = "2023-11-16 18:15:46.6805900,374,44\n"
MOONCAKE_ROW = '{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}\n'
CSV_HEADER = "arrival_s,prompt_tokens,output_tokens,block_hashes\n"
JSONL_ROW = '{"arrival_s": 0.5, "prompt_tokens": 10, "output_tokens": 3}\n'

MALFORMED = [
    pytest.param("a.csv", "azure", AZURE_HEADER + AZURE_ROW + "2023-11-16 18:15:47.1,abc,4\n", 3,
                 "ContextTokens must be an integer", id="azure: non-integer token count"),
    pytest.param("a.csv", "azure", AZURE_HEADER + AZURE_ROW + "2023-11-16 18:15:4,1,4\n" , 3,
                 "bad TIMESTAMP", id="azure: truncated timestamp"),
    pytest.param("a.csv", "azure", AZURE_HEADER + AZURE_ROW + "2023-11-16 18:15:40.0,1,4\n", 3,
                 "goes backwards", id="azure: clock goes backwards"),
    pytest.param("a.csv", "azure", AZURE_HEADER + "2023-11-16 18:15:47.1,3\n", 2,
                 "expected 3 fields, got 2", id="azure: missing field"),
    pytest.param("a.csv", "azure", "TIME,ContextTokens,GeneratedTokens\n" + AZURE_ROW, 1,
                 "header lacks column(s) TIMESTAMP", id="azure: wrong header"),
    pytest.param("m.jsonl", "mooncake", MOONCAKE_ROW + '{"timestamp": 5, "input_length": 600\n', 2,
                 "invalid JSON", id="mooncake: broken JSON"),
    pytest.param("m.jsonl", "mooncake",
                 MOONCAKE_ROW + '{"timestamp": 5, "input_length": 600, "hash_ids": []}\n', 2,
                 "missing key 'output_length'", id="mooncake: missing key"),
    pytest.param("m.jsonl", "mooncake", MOONCAKE_ROW * 2
                 + '{"timestamp": 9, "input_length": 600, "output_length": 1, "hash_ids": [0]}\n', 3,
                 "1 block hashes for 600 prompt tokens; expected 2", id="mooncake: hash count disagrees"),
    pytest.param("m.jsonl", "mooncake",
                 '{"timestamp": 0, "input_length": 6, "output_length": 1, "hash_ids": ["x"]}\n', 1,
                 "hash_ids must hold only integers", id="mooncake: non-integer hash"),
    pytest.param("p.csv", "csv", CSV_HEADER + "0.0,600,5,0 1\n1.0,-3,5,\n", 3,
                 "token counts must be non-negative", id="csv: negative tokens"),
    pytest.param("p.csv", "csv", CSV_HEADER + "0.0,600,5,0 1\nnan,600,5,0 1\n", 3,
                 "not finite", id="csv: non-finite time"),
    pytest.param("p.jsonl", "jsonl", JSONL_ROW + "[1, 2]\n", 2,
                 "expected a JSON object", id="jsonl: not an object"),
    pytest.param("p.jsonl", "jsonl", JSONL_ROW + '{"arrival_s": 1, "prompt_tokens": 10, "output_tokens": 3, '
                 '"block_hashes": [4]}\n', 2, "block hashes present; earlier rows have none",
                 id="jsonl: hashes on some rows only"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fmt", "text", "line", "reason"), MALFORMED)
def test_malformed_line_names_file_line_and_reason(
    tmp_path: Path, name: str, fmt: loaders.TraceFormat, text: str, line: int, reason: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(loaders.TraceError, match=re.escape(f"{path}:{line}: ") + ".*" + re.escape(reason)):
        loaders.load_trace(path, format=fmt)


def test_empty_trace_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "e.csv", AZURE_HEADER)
    with pytest.raises(loaders.TraceError, match="no requests"):
        loaders.load_trace(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.csv", CSV_HEADER + "2.5,600,5,7 8\n3.0,10,1,7\n"),
        (
            "p.jsonl",
            '{"arrival_s": 2.5, "prompt_tokens": 600, "output_tokens": 5, "block_hashes": [7, 8]}\n'
            '{"arrival_s": 3.0, "prompt_tokens": 10, "output_tokens": 1, "block_hashes": [7]}\n',
        ),
    ],
    ids=["plain csv", "plain jsonl"],
)
def test_plain_formats_round_trip_and_shift_time_to_zero(tmp_path: Path, name: str, text: str) -> None:
    loaded = loaders.load_trace(_write(tmp_path, name, text))
    assert list(loaded.arrival_s) == [0.0, 0.5]
    assert list(loaded.prompt_tokens) == [600, 10]
    assert list(loaded.output_tokens) == [5, 1]
    assert [list(loaded.hashes(i)) for i in range(2)] == [[7, 8], [7]]


def test_format_is_detected_from_extension_and_first_line(tmp_path: Path) -> None:
    assert loaders.detect_format(_write(tmp_path, "a.csv", AZURE_HEADER + AZURE_ROW)) == "azure"
    assert loaders.detect_format(_write(tmp_path, "m.jsonl", MOONCAKE_ROW)) == "mooncake"
    assert loaders.detect_format(_write(tmp_path, "p.csv", CSV_HEADER)) == "csv"
    assert loaders.detect_format(_write(tmp_path, "p.jsonl", JSONL_ROW)) == "jsonl"
    with pytest.raises(loaders.TraceError, match="cannot tell the trace format"):
        loaders.detect_format(_write(tmp_path, "x.txt", "1,2,3\n"))


def test_gzip_compressed_trace_reads_as_the_plain_one(tmp_path: Path) -> None:
    text = (
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2026-01-07 14:00:00.0000000,129,12\n"
        "2026-01-07 14:00:01.5,590,77\n"
    )
    plain = tmp_path / "hour.csv"
    plain.write_text(text)
    packed = tmp_path / "hour.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert loaders.detect_format(packed) == "azure"
    a, b = loaders.load_trace(plain), loaders.load_trace(packed)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.prompt_tokens, b.prompt_tokens)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)


def test_truncated_gzip_is_a_trace_error(tmp_path: Path) -> None:
    packed = tmp_path / "cut.csv.gz"
    packed.write_bytes(gzip.compress(b"TIMESTAMP,ContextTokens,GeneratedTokens\n" * 50)[:-12])
    with pytest.raises(loaders.TraceError, match=re.escape("cut.csv.gz")):
        loaders.load_trace(packed, format="azure")


@pytest.mark.parametrize(
    ("name", "rate", "output_mean"),
    [
        ("servegen_m-mid_day2_h14.csv.gz", 150, 43),
        ("servegen_m-small_day3_h10.csv.gz", 100, 15),
        ("servegen_deepseek-r1_day1_h15.csv.gz", 10, 963),
    ],
    ids=["m-mid", "m-small", "deepseek-r1"],
)
def test_servegen_hours_match_their_readme(
    servegen_dir: Path, name: str, rate: float, output_mean: float
) -> None:
    hour = loaders.load_trace(servegen_dir / name)
    assert hour.duration_s == pytest.approx(3600, abs=5)
    assert hour.mean_rate == pytest.approx(rate, rel=0.02)
    assert hour.output_tokens.mean() == pytest.approx(output_mean, rel=0.05)  # the README rounds

"""simulations/fetch_traces.py downloads (file:// URLs here: no network), checks rows, never half-writes."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "simulations" / "fetch_traces.py"


@pytest.fixture(scope="module")
def fetch_traces() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_traces", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fetch_traces"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _source(fetch_traces: ModuleType, tmp_path: Path, *, rows: int, expected: int) -> object:
    upstream = tmp_path / "upstream.csv"
    upstream.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "2023-11-16 18:15:46.0,1,1\n" * rows)
    azure = fetch_traces.SOURCES[0]
    return dataclasses.replace(azure, url=upstream.as_uri(), rows=expected)


def test_sources_are_the_published_traces(fetch_traces: ModuleType) -> None:
    by_key = {source.key: source for source in fetch_traces.SOURCES}
    assert by_key["azure"].rows == 19_366
    assert by_key["azure"].url.endswith("AzurePublicDataset/master/data/AzureLLMInferenceTrace_conv.csv")
    assert by_key["mooncake"].rows == 12_031
    assert by_key["mooncake"].url.endswith("Mooncake/main/FAST25-release/traces/conversation_trace.jsonl")
    assert SCRIPT.parent / "traces" == fetch_traces.DEFAULT_DEST


def test_download_with_the_right_row_count_is_written(fetch_traces: ModuleType, tmp_path: Path) -> None:
    source = _source(fetch_traces, tmp_path, rows=5, expected=5)
    target = fetch_traces.fetch(source, tmp_path / "traces")
    assert target.read_text().count("\n") == 6
    # present and complete: kept without downloading again
    assert (
        fetch_traces.fetch(dataclasses.replace(source, url="file:///nonexistent"), tmp_path / "traces")
        == target
    )


def test_truncated_download_fails_and_leaves_nothing(fetch_traces: ModuleType, tmp_path: Path) -> None:
    source = _source(fetch_traces, tmp_path, rows=4, expected=5)
    with pytest.raises(fetch_traces.FetchError, match="got 4 rows, expected 5"):
        fetch_traces.fetch(source, tmp_path / "traces")
    assert list((tmp_path / "traces").iterdir()) == []


def test_unreachable_source_is_reported(fetch_traces: ModuleType, tmp_path: Path) -> None:
    source = dataclasses.replace(fetch_traces.SOURCES[1], url=(tmp_path / "missing.jsonl").as_uri())
    with pytest.raises(fetch_traces.FetchError, match=r"download from .* failed"):
        fetch_traces.fetch(source, tmp_path / "traces")

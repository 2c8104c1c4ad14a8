"""/metrics: vLLM's names (with colons, whatever the Accept header), types, labels and buckets."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from autoscaler.emulator import metrics as vm
from autoscaler.emulator import tokens
from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)  # what Prometheus 2.42 sends

EXPECTED_TYPES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:num_requests_waiting_by_reason": "gauge",
    "vllm:num_requests_kv_fetch_by_stage": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:cache_config_info": "gauge",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:num_preemptions": "counter",
    "vllm:request_success": "counter",
    "vllm:prompt_tokens_by_source": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:request_time_per_output_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:request_inference_time_seconds": "histogram",
    "vllm:request_prefill_time_seconds": "histogram",
    "vllm:request_decode_time_seconds": "histogram",
    "vllm:request_prompt_tokens": "histogram",
    "vllm:request_generation_tokens": "histogram",
    "vllm:request_params_max_tokens": "histogram",
}

BUCKETS = {
    "vllm:time_to_first_token_seconds": vm.TTFT_BUCKETS,
    "vllm:inter_token_latency_seconds": vm.ITL_BUCKETS,
    "vllm:e2e_request_latency_seconds": vm.REQUEST_LATENCY_BUCKETS,
    "vllm:request_prompt_tokens": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
}


async def test_exposition_has_vllm_names_types_labels_and_buckets(start: Start) -> None:
    async with start(speed=50, max_model_len=2048, num_gpu_blocks_override=1000) as emu:
        await emu.client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "hello there", "max_tokens": 3}
        )
        response = await emu.client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    sample_lines = [line for line in response.text.splitlines() if line and not line.startswith("#")]
    assert all(line.startswith("vllm:") for line in sample_lines)  # no OpenMetrics `vllm_` rewrite

    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {name: families[name].type for name in EXPECTED_TYPES} == EXPECTED_TYPES
    for family in families.values():
        for sample in family.samples:
            if family.name != "vllm:cache_config_info":
                assert sample.labels["model_name"] == MODEL, sample
            assert sample.labels["engine"] == "0", sample

    for name, buckets in BUCKETS.items():
        les = [s.labels["le"] for s in families[name].samples if s.name == f"{name}_bucket"]
        assert les == [str(float(b)) for b in buckets] + ["+Inf"], name

    counters = {s.name: s for f in families.values() for s in f.samples}
    assert counters["vllm:prompt_tokens_total"].value == len(tokens.encode("hello there"))
    assert counters["vllm:generation_tokens_total"].value == 3
    success = {
        s.labels["finished_reason"]: s.value
        for s in families["vllm:request_success"].samples
        if s.name == "vllm:request_success_total"
    }
    assert success == {"stop": 0, "length": 1, "abort": 0, "error": 0, "repetition": 0}

    (info,) = families["vllm:cache_config_info"].samples
    assert info.value == 1
    assert info.labels["block_size"] == "16"
    assert info.labels["num_gpu_blocks"] == "1000"
    assert info.labels["enable_prefix_caching"] == "True"
    assert info.labels["prefix_caching_hash_algo"] == "sha256"


def test_1_2_5_buckets_stop_at_max_model_len() -> None:
    assert vm.buckets_1_2_5(100) == (1, 2, 5, 10, 20, 50, 100)
    assert vm.buckets_1_2_5(8192)[-1] == 5000

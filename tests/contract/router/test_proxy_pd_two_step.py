"""P/D over vLLM's two-step kv_transfer_params protocol: prefill first, then decode with its params."""

from __future__ import annotations

import json

import httpx

from tests.contract.router.conftest import ProxyFactory, refused_url, serve
from tests.contract.router.fake_engine import KV_PARAMS, FakeEngine, completion, expected_stream

HEADERS = {"content-type": "application/json"}
LONG = "a long shared document " * 200  # about 1,150 estimated tokens: worth a remote prefill


async def test_long_prompt_prefills_remotely_then_decodes(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    prefill, decode = FakeEngine("p"), FakeEngine("d")
    async with (
        serve(prefill.app) as p_url,
        serve(decode.app) as d_url,
        proxy_for(
            [{"url": p_url, "name": "p", "phase": "prefill"}, {"url": d_url, "name": "d", "phase": "decode"}]
        ) as (
            url,
            proxy,
        ),
    ):
        body = completion(stream=True, max_tokens=6, prompt=LONG)
        r = await client.post(f"{url}/v1/completions", content=body, headers=HEADERS)
        short = await client.post(f"{url}/v1/completions", content=completion(prompt="hi"), headers=HEADERS)
        text = (await client.get(f"{url}/metrics")).text
    assert r.status_code == 200 and r.content == b"".join(expected_stream("d", 6))
    [first] = prefill.bodies
    assert (first["max_tokens"], first["stream"], first["kv_transfer_params"]["do_remote_decode"]) == (
        1,
        False,
        True,
    )
    assert first["prompt"] == LONG
    assert decode.bodies[0] == {**json.loads(body), "kv_transfer_params": KV_PARAMS}
    assert short.status_code == 200 and len(prefill.bodies) == 1  # short: decoded and prefilled locally
    assert (
        'autoscaler_router_pd_decisions_total{decision="prefill-decode",pool="default",reason="remote"} 1.0'
        in text
    )
    assert (
        'autoscaler_router_pd_decisions_total{decision="decode-only",pool="default",reason="short"} 1.0'
        in text
    )
    assert 'autoscaler_router_requests_total{phase="prefill",pool="default"} 1.0' in text
    assert 'autoscaler_router_requests_total{phase="decode",pool="default"} 2.0' in text
    assert proxy.router.in_flight("p") == proxy.router.in_flight("d") == 0


async def test_failed_prefill_falls_back_to_local_prefill(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    decode = FakeEngine("d")
    async with (
        serve(decode.app) as d_url,
        proxy_for(
            [
                {"url": refused_url(), "name": "p", "phase": "prefill"},
                {"url": d_url, "name": "d", "phase": "decode"},
            ]
        ) as (url, proxy),
    ):
        body = completion(prompt=LONG)
        r = await client.post(f"{url}/v1/completions", content=body, headers=HEADERS)
        text = (await client.get(f"{url}/metrics")).text
    assert r.status_code == 200
    assert decode.bodies == [json.loads(body)]  # no kv_transfer_params: the decode engine prefilled itself
    assert 'autoscaler_router_upstream_errors_total{endpoint="p",kind="refused",pool="default"} 1.0' in text
    assert proxy.fleet.ready() == ["d"]
    assert proxy.router.in_flight("p") == proxy.router.in_flight("d") == 0

"""The picker's configuration is refused at start-up when it asks for what the picker cannot do."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from autoscaler.adapters.epp.settings import EppSettings

STATIC = {"static": [{"url": "http://127.0.0.1:8000"}]}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"endpoints": STATIC, "fallbacks": 99}, "fallbacks"),
        ({"endpoints": STATIC, "body_mode": "streamed"}, "body_mode"),
        ({"endpoints": STATIC, "hashing": {"mode": "precise", "tokenize_with_engine": True}}, "tokenize"),
        ({"endpoints": {**STATIC, "inference_pool": {"name": "p"}}}, "exactly one"),
        ({"endpoints": {"inference_pool": {"namespace": "serving"}}}, "name"),
        ({"endpoints": STATIC, "max_in_flight_requests": 0}, "max_in_flight_requests"),
        ({"endpoints": STATIC, "grpc": 9002}, "grpc"),
    ],
    ids=["too-many-fallbacks", "streamed-mode", "engine-tokenizer", "two-sources", "pool-without-name",
         "no-request-allowed", "unknown-field"],
)  # fmt: skip
def test_an_impossible_config_is_refused_naming_why(config: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        EppSettings.model_validate(config)


def test_the_fleet_gets_the_routers_part_of_the_config() -> None:
    settings = EppSettings.model_validate({"endpoints": STATIC, "pool": "p", "scrape_interval_s": 3})
    proxy = settings.proxy_settings()
    assert (proxy.pool, proxy.endpoints, proxy.scrape_interval_s) == ("p", settings.endpoints, 3)

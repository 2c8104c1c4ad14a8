"""The endpoint picker's configuration (``autoscaler router --mode epp --config FILE``), validated once.

The router's own part (discovery, hashing, scorers, scrapes) is the proxy's, so the same file drives
either mode; the picker adds its gRPC and metrics ports, the ext_proc body mode it assumes when Envoy does
not say, the fallback list's length, and when to shed. Example::

    pool: llama-8b
    port: 9002                                   # ext_proc and gRPC health
    metrics_port: 9090                           # /metrics (the proxy's series) and /health
    endpoints:
      inference_pool: {namespace: serving, name: llama-8b}
    fallbacks: 2
    max_in_flight_requests: 4096                 # beyond: 429
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.adapters.proxy.settings import Discovery, Hashing, PositiveSeconds, ProxySettings
from autoscaler.profiles.schema import Profile
from autoscaler.routing.admission import AdmissionSettings
from autoscaler.routing.settings import RouterSettings

Port = Annotated[int, Field(ge=0, le=65535)]


class EppSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: Annotated[str, Field(min_length=1)] = "default"  # the metrics' pool label
    profile: str | None = None  # performance profile whose prefill rate the P/D decider uses
    host: str = "127.0.0.1"  # the chart passes 0.0.0.0 explicitly; a bare CLI run stays on loopback
    port: Port = 9002  # GIE's conventional ext_proc port
    metrics_port: Port = 9090
    endpoints: Discovery
    hashing: Hashing = Hashing()
    router: RouterSettings = RouterSettings()
    max_body_bytes: Annotated[int, Field(ge=1)] = 16 * 1024 * 1024
    max_prompt_tokens: Annotated[int, Field(ge=1)] = 1_048_576  # a longer prompt is refused (413)
    default_max_tokens: Annotated[int, Field(ge=1)] = 256
    session_header: str = "x-session-id"
    scrape_interval_s: PositiveSeconds = 1.0
    scrape_timeout_s: PositiveSeconds = 0.5
    default_kv_capacity_tokens: Annotated[int, Field(ge=1)] = 1_000_000
    shutdown_timeout_s: PositiveSeconds = 60.0  # on SIGTERM, how long open streams may still finish
    # Envoy says its body modes in each stream's first message (``protocol_config``, Envoy >= 1.33); an
    # older one does not, and this is what the gateway is then assumed to be configured with.
    body_mode: Literal["full-duplex-streamed", "buffered"] = "full-duplex-streamed"
    # Endpoints listed after the chosen one, for the gateway's retries (least loaded first).
    fallbacks: Annotated[int, Field(ge=0, le=8)] = 2
    max_in_flight_requests: Annotated[int, Field(ge=1)] | None = None  # beyond it: 429
    # A request whose priority (this header, an integer) is negative is sheddable, as GIE's
    # InferenceObjective priorities are: 429 when every endpoint that could serve it is overloaded.
    priority_header: str = "x-gateway-inference-priority"
    # The admission queue in front of the endpoints, as the proxy's; the priority header's integer picks the
    # class: negative "sheddable", positive "critical", else the default (absent: the default).
    admission: AdmissionSettings = AdmissionSettings()
    stream_chunk_bytes: Annotated[int, Field(ge=1024, le=4 * 1024 * 1024)] = 64 * 1024

    @model_validator(mode="after")
    def _no_engine_tokenizer(self) -> EppSettings:
        # The picker never talks to an engine (the gateway does): in precise mode a text prompt is placed
        # on load alone, as the proxy places it without tokenize_with_engine.
        if self.hashing.tokenize_with_engine:
            raise ValueError(
                "hashing.tokenize_with_engine: the endpoint picker cannot ask an engine to tokenize"
            )
        return self

    def proxy_settings(self) -> ProxySettings:
        """The part the proxy's fleet reads (discovery, scrapes, hashing), as the proxy's settings."""
        return ProxySettings(
            pool=self.pool,
            profile=self.profile,
            endpoints=self.endpoints,
            hashing=self.hashing,
            router=self.router,
            scrape_interval_s=self.scrape_interval_s,
            scrape_timeout_s=self.scrape_timeout_s,
            default_kv_capacity_tokens=self.default_kv_capacity_tokens,
        )

    def router_settings(self, profile: Profile | None = None) -> RouterSettings:
        return self.proxy_settings().router_settings(profile)

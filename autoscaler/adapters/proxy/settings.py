"""The proxy's configuration (``autoscaler router --config FILE``), validated once at start-up.

Example::

    pool: llama-8b
    port: 8000
    endpoints:
      static:
        - {url: "http://10.0.0.5:8000", phase: prefill, kv_events: "tcp://10.0.0.5:5557"}
        - {url: "http://10.0.0.6:8000", phase: decode}
      # or  file: /etc/router/endpoints.yaml      (the same list, re-read when it changes)
      # or  kubernetes: {namespace: serving, selector: "app=vllm", port: 8000}
      # or  inference_pool: {namespace: serving, name: llama-8b}   (GIE InferencePool: its pods and ports)
    hashing: {mode: approximate, block_tokens: 64}
    router:                                      # autoscaler.routing.settings.RouterSettings
      scorers: [{type: prefix-affinity, weight: 4.5}, {type: in-flight-tokens, weight: 2}]
    admission:                                   # autoscaler.routing.admission.AdmissionSettings
      wake_timeout_s: 300                        # at zero replicas, hold requests while the pool wakes
      classes: [{name: interactive, rank: 0, ttl_s: 2}, {name: batch, rank: 1, ttl_s: 600}]
      default_class: interactive                 # the header x-priority-class names another
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.core.phases import Phase
from autoscaler.profiles.schema import Profile
from autoscaler.routing.admission import AdmissionSettings
from autoscaler.routing.hashing import VLLM_DEFAULT_SEED, PreciseAlgo
from autoscaler.routing.settings import IndexSource, RouterSettings, calibrated

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
ClientSeconds = Annotated[float, Field(gt=0, le=3600)]
IDLE_TIMEOUT_S = 15.0  # a client connection with no request under way is closed after this


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StaticEndpoint(_Frozen):
    url: Annotated[str, Field(pattern=r"^https?://[^/]+$")]  # scheme://host:port, no path
    name: str | None = None  # defaults to the URL's host:port
    phase: Phase = Phase.AGGREGATED
    kv_events: str | None = None  # the engine's KV-event PUB address, e.g. tcp://10.0.0.5:5557
    draining: bool = False

    @property
    def key(self) -> str:
        return self.name or self.url.split("://", 1)[1]


class KubernetesDiscovery(_Frozen):
    """Ready pods matching ``selector``; their phase from ``phase_label``, draining from an annotation.

    Needs the ``kubernetes`` client (the controller extra)."""

    namespace: str = "default"
    selector: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    scheme: Literal["http", "https"] = "http"
    phase_label: str = "llm-d.ai/role"  # prefill | decode | prefill-decode (aggregated); absent: aggregated
    # Set (to anything but "" or "false") on a pod: no new requests. The controller's mark, whose value is
    # the time the drain began (autoscaler.adapters.kubernetes.pods.DRAINING_ANNOTATION).
    draining_annotation: str = "inference-autoscaler.io/draining-since"
    kv_events_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    api_server: str | None = (
        None  # e.g. http://127.0.0.1:8001 (kubectl proxy); default: in-cluster, then kubeconfig
    )


class InferencePoolDiscovery(_Frozen):
    """The pods of a Gateway API Inference Extension ``InferencePool`` (its selector, on its target ports),
    named after the pod; phase and draining as for ``kubernetes``.

    Needs the ``kubernetes`` client (the controller extra)."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str = "default"
    scheme: Literal["http", "https"] = "http"
    phase_label: str = "llm-d.ai/role"
    kv_events_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    api_server: str | None = None  # as for ``kubernetes``; default: in-cluster, then kubeconfig


class Discovery(_Frozen):
    static: tuple[StaticEndpoint, ...] = ()
    file: Path | None = None
    kubernetes: KubernetesDiscovery | None = None
    inference_pool: InferencePoolDiscovery | None = None
    file_poll_s: PositiveSeconds = 2.0

    @model_validator(mode="after")
    def _exactly_one(self) -> Discovery:
        sources = [
            bool(self.static),
            self.file is not None,
            self.kubernetes is not None,
            self.inference_pool is not None,
        ]
        if sum(sources) != 1:
            raise ValueError("endpoints: give exactly one of static, file, kubernetes or inference_pool")
        return self


class Hashing(_Frozen):
    """How the proxy turns a prompt into block hashes.

    ``approximate``: token ids when the request carries them, else the UTF-8 text in chunks of
    ``block_tokens x chars_per_token`` bytes. ``precise``: vLLM's own hashes, which need token ids: a
    text prompt (or a chat) is tokenized by a ready engine's ``/tokenize`` when ``tokenize_with_engine``
    is set (one more round trip, exact tokens including the chat template), else gets no hashes and is
    placed on load alone. ``block_tokens`` must be the engines'
    block size, ``algo`` and ``seed`` their ``--prefix-caching-hash-algo`` and ``PYTHONHASHSEED``, and
    each engine needs its ``kv_events`` address (static) or ``kv_events_port`` (Kubernetes): in precise
    mode only KV events fill the index. With data parallelism vLLM publishes rank r on port + r; only
    rank 0's port is subscribed.
    """

    mode: Literal["approximate", "precise"] = "approximate"
    block_tokens: Annotated[int, Field(ge=1)] = 64
    chars_per_token: Annotated[float, Field(gt=0)] = 4.0  # also estimates a text prompt's tokens
    algo: PreciseAlgo = PreciseAlgo.SHA256
    seed: str = VLLM_DEFAULT_SEED
    tokenize_with_engine: bool = False  # precise mode: text prompts through an engine's /tokenize


class ProxySettings(_Frozen):
    pool: Annotated[str, Field(min_length=1)] = "default"  # the metrics' pool label
    profile: str | None = None  # performance profile (models/...) whose prefill rate the P/D decider uses
    # Loopback unless told otherwise: serving every interface is a choice the deployment makes (the chart
    # sets 0.0.0.0, and the pod's network policy limits who reaches it).
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    endpoints: Discovery
    hashing: Hashing = Hashing()
    router: RouterSettings = RouterSettings()
    admission: AdmissionSettings = AdmissionSettings()  # the queue in front of the engines
    max_body_bytes: Annotated[int, Field(ge=1)] = 16 * 1024 * 1024
    # A prompt over this many tokens (estimated from text as for hashing) is answered 413 before it is
    # hashed: 8x the longest common context windows, and a bound on the CPU one request may take.
    max_prompt_tokens: Annotated[int, Field(ge=1)] = 1_048_576
    default_max_tokens: Annotated[int, Field(ge=1)] = 256  # output estimate when a request sets none
    session_header: str = "x-session-id"
    scrape_interval_s: PositiveSeconds = 1.0
    scrape_timeout_s: PositiveSeconds = 0.5
    connect_timeout_s: PositiveSeconds = 2.0
    read_timeout_s: PositiveSeconds = 600.0  # longest an engine may be silent (a long non-streamed answer)
    # An engine that fails its health checks (its /metrics, ``scrape_timeout_s`` each, three in a row) holds
    # no request longer than this more: one waiting for its first byte is placed again elsewhere, a stream
    # that stays silent this long is ended. A stopped engine thus holds a request a few seconds, not
    # ``read_timeout_s``.
    stall_timeout_s: PositiveSeconds = 2.0
    # Client connections: one with no request under way (idle keep-alive, or request headers not yet all
    # in) is closed after ``idle_timeout_s``; a request's body must be in within ``body_timeout_s`` (408).
    idle_timeout_s: ClientSeconds = IDLE_TIMEOUT_S
    body_timeout_s: ClientSeconds = 30.0
    connect_attempts: Annotated[int, Field(ge=1)] = 3  # endpoints tried when connections are refused
    retry_after_s: Annotated[int, Field(ge=1)] = 1  # the 503's Retry-After
    shutdown_timeout_s: PositiveSeconds = 60.0  # on SIGTERM, how long in-flight requests may still finish
    default_kv_capacity_tokens: Annotated[int, Field(ge=1)] = 1_000_000  # until the first scrape says

    def router_settings(self, profile: Profile | None = None) -> RouterSettings:
        """``router`` with the hashing's block size and index source, whatever ``router`` says of them, and
        calibrated to ``profile`` (the one ``profile`` names, loaded by the caller) when given."""
        source = IndexSource.KV_EVENTS if self.hashing.mode == "precise" else IndexSource.PLACEMENT
        router = calibrated(self.router, profile) if profile is not None else self.router
        return router.model_copy(update={"block_tokens": self.hashing.block_tokens, "index_source": source})

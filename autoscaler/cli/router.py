"""Run the cache-affinity router as an OpenAI-compatible HTTP proxy in front of vLLM engines, or as the
endpoint picker of a Gateway API Inference Extension InferencePool (``--mode epp``: Envoy ext_proc).

Example:
  autoscaler router --config router.yaml [--port 8000]
  autoscaler router --mode epp --config picker.yaml [--port 9002]

In EPP mode the config is ``autoscaler.adapters.epp.settings.EppSettings`` (the same router, discovery
and hashing sections, plus the picker's ports and policies); ext_proc and gRPC health listen on --port,
/metrics on metrics_port.

The config file (YAML) is ``autoscaler.adapters.proxy.settings.ProxySettings``: where the engines are
(static list, file or Kubernetes label selector), how prompts are hashed (approximate or vLLM-precise),
and the router's scorer weights, overload thresholds, P/D decider and slow start. Serves
/v1/completions, /v1/chat/completions, /v1/models, /health and /metrics, on 127.0.0.1 unless the config's
``host`` or --host says otherwise (0.0.0.0 serves every interface; the Helm chart sets it).
SIGTERM or SIGINT stop it gracefully (in-flight requests get shutdown_timeout_s to finish), after which the
process ends by that signal. Exit codes: 2 bad config or an address it cannot listen on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, overload

import pydantic
import yaml

from autoscaler.adapters.proxy.settings import ProxySettings
from autoscaler.config import yaml_errors
from autoscaler.config.profiles import ProfileError, load_profile
from autoscaler.profiles.schema import Profile

if TYPE_CHECKING:
    from autoscaler.adapters.proxy.app import Proxy

Settings = TypeVar("Settings", bound=pydantic.BaseModel)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--mode",
        default="proxy",
        choices=["proxy", "epp"],
        help="proxy: OpenAI-compatible HTTP proxy; epp: endpoint picker for a GIE gateway (Envoy ext_proc)",
    )
    parser.add_argument("--config", required=True, type=Path, help="router configuration (YAML)")
    parser.add_argument(
        "--host", help="listen address (overrides the config; proxy default 127.0.0.1, 0.0.0.0 for all)"
    )
    parser.add_argument("--port", type=int, help="listen port (overrides the config)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


@overload
def load_settings(path: Path, *, host: str | None = None, port: int | None = None) -> ProxySettings: ...


@overload
def load_settings(
    path: Path, *, host: str | None = None, port: int | None = None, model: type[Settings]
) -> Settings: ...


def load_settings(
    path: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    model: type[pydantic.BaseModel] = ProxySettings,
) -> pydantic.BaseModel:
    """The validated settings (``model``: the mode's); raises ``ValueError`` naming the file and fields."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
        overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        return model.model_validate({**data, **overrides})
    except OSError as err:
        raise ValueError(f"{path}: {err}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {yaml_errors.describe(err)}") from err
    except pydantic.ValidationError as err:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"{path}: {fields}") from err


def run(args: argparse.Namespace) -> int:
    if args.mode == "epp":
        return _run_epp(args)
    from autoscaler.adapters.proxy import app

    try:
        settings = load_settings(args.config, host=args.host, port=args.port)
        profile = load_profile(settings.profile) if settings.profile else None
    except (ValueError, ProfileError) as err:
        print(f"autoscaler router: {err}", file=sys.stderr)
        return 2
    _log_to_stderr(args.log_level)
    try:
        app.run(build_proxy(settings, profile=profile))
    except OSError as err:  # the address is in use, not local, or not an address
        print(f"autoscaler router: cannot listen on {settings.host}:{settings.port}: {err}", file=sys.stderr)
        return 2
    return 0


def build_proxy(settings: ProxySettings, *, seed: int = 0, profile: Profile | None = None) -> Proxy:
    """The proxy wired from its settings: the router (``seed`` breaks its ties; ``profile``, the loaded
    ``settings.profile`` if any, gives it and the admission queue their rates), the fleet that feeds the
    router, the metrics, and the admission gate. aiohttp is imported here, not at the top, so that
    ``--help`` works without the ``[router]`` extra."""
    from autoscaler.adapters.admission_gate import AdmissionGate
    from autoscaler.adapters.proxy.app import Proxy
    from autoscaler.adapters.proxy.fleet import Fleet
    from autoscaler.adapters.proxy.metrics import RouterMetrics
    from autoscaler.routing.admission import AdmissionQueue, limits_from_profile
    from autoscaler.routing.router import AffinityRouter

    router = AffinityRouter(settings.router_settings(profile), seed=seed)
    metrics = RouterMetrics(pool=settings.pool, router=router)
    admission = AdmissionGate(
        router,
        AdmissionQueue(settings.admission, limits_from_profile(settings.admission, profile)),
        pool=settings.pool,
        registry=metrics.registry,
    )
    return Proxy(settings, router=router, fleet=Fleet(settings, router), metrics=metrics, admission=admission)


def _run_epp(args: argparse.Namespace) -> int:
    from autoscaler.adapters.epp import server
    from autoscaler.adapters.epp.settings import EppSettings

    try:
        settings = load_settings(args.config, host=args.host, port=args.port, model=EppSettings)
        profile = load_profile(settings.profile) if settings.profile else None
    except (ValueError, ProfileError) as err:
        print(f"autoscaler router: {err}", file=sys.stderr)
        return 2
    _log_to_stderr(args.log_level)
    server.run(settings, profile=profile)
    return 0


def _log_to_stderr(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )

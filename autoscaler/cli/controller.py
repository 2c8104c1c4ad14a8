"""Run the cluster controller: scale the InferenceAutoscalers' prefill and decode workloads.

Examples:
  autoscaler controller --prometheus http://prometheus.monitoring:9090
  autoscaler controller --namespace serving --prometheus http://127.0.0.1:9090 --kubeconfig ~/.kube/config
  autoscaler controller --namespace serving --prometheus http://127.0.0.1:9090 --once

Each replica watches the InferenceAutoscaler resources (one namespace, or all), and the one holding the
Lease runs a control cycle per resource every spec.controlIntervalSeconds: signals from Prometheus, the
policy, then the scale subresource (mode direct) or only the published desired replicas (mode advisory).
Inside a pod the service account's credentials are used, elsewhere the kubeconfig. /healthz, /readyz and
/metrics (the controller's own metrics and autoscaler_desired_replicas) are served on --health-port.
Logs are JSON lines on stderr. SIGTERM or SIGINT stop it gracefully and release the Lease.

The same process can serve the published desired replicas to clusters that keep their own actuator:
--keda-port for KEDA's external scaler (gRPC), --external-metrics-port (with --tls-cert and --tls-key) for
the external.metrics.k8s.io API behind an APIService. Only the leader publishes.

--once runs one election step and one cycle per resource, releases the Lease and exits: 0 when every
cycle decided, 1 when this replica is not the leader or a cycle held, 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import uvicorn
from kubernetes.aio import client

from autoscaler.adapters.external_metrics import TlsFiles, external_metrics_server
from autoscaler.adapters.keda.scaler import serve_keda
from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.connection import connect
from autoscaler.adapters.kubernetes.events import EventRecorder
from autoscaler.adapters.kubernetes.foreign import ForeignAutoscalerFinder
from autoscaler.adapters.kubernetes.leases import LeaseElector
from autoscaler.adapters.kubernetes.pods import PodClient
from autoscaler.adapters.kubernetes.resources import CustomResources
from autoscaler.adapters.kubernetes.scale import ScaleClient
from autoscaler.adapters.metrics_exporter import DesiredReplicasCollector
from autoscaler.adapters.prometheus_signals import PrometheusSignals
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.adapters.router_metrics import RouterLoadReader
from autoscaler.cli import checks
from autoscaler.controller import logs
from autoscaler.controller.cycle import ClusterClients
from autoscaler.controller.health import ControllerMetrics
from autoscaler.controller.loop import KIND, Controller, ControllerSettings
from autoscaler.controller.signals import SignalReader
from autoscaler.core import ports

log = logging.getLogger("autoscaler.controller")
LOOPBACK = "127.0.0.1"  # every server binds here unless told otherwise (the chart says what a pod needs)


class _WallClock:
    """Epoch seconds: Lease and Event timestamps are wall-clock times."""

    def now(self) -> float:
        return time.time()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    parser.add_argument(
        "--prometheus-ca-bundle",
        type=Path,
        metavar="PEM",
        help="CA certificates that sign an https Prometheus (default: the system's; never unverified)",
    )
    parser.add_argument(
        "--namespace",
        help="reconcile the InferenceAutoscalers of this namespace only (default: all namespaces)",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster credentials, else ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--lease-name", default="inference-autoscaler", help="Lease for leader election")
    parser.add_argument(
        "--lease-namespace",
        help="namespace of the Lease (default: $POD_NAMESPACE, else --namespace, else default)",
    )
    parser.add_argument(
        "--lease-duration", type=int, default=15, help="seconds a leader holds the Lease (15)"
    )
    parser.add_argument("--renew-every", type=float, default=5.0, help="seconds between Lease renewals (5)")
    parser.add_argument(
        "--identity", help="this replica's name in the Lease (default: $POD_NAME, else host-pid)"
    )
    parser.add_argument(
        "--health-host", default=LOOPBACK, help=f"address of /healthz, /readyz, /metrics ({LOOPBACK})"
    )
    parser.add_argument(
        "--health-port", type=int, default=8081, help="port of /healthz, /readyz, /metrics (8081)"
    )
    parser.add_argument("--keda-host", default=LOOPBACK, help=f"address of the KEDA scaler ({LOOPBACK})")
    parser.add_argument("--keda-port", type=int, help="serve KEDA's external scaler (gRPC) on this port")
    parser.add_argument(
        "--external-metrics-host",
        default=LOOPBACK,
        help=f"address of the external metrics API ({LOOPBACK})",
    )
    parser.add_argument(
        "--external-metrics-port", type=int, help="serve the external.metrics.k8s.io API (TLS) on this port"
    )
    parser.add_argument("--tls-cert", type=Path, help="serving certificate of the external metrics API (PEM)")
    parser.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    parser.add_argument(
        "--tls-client-ca", type=Path, help="accept only clients this CA signed (front-proxy CA)"
    )
    parser.add_argument(
        "--router-metrics-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a host spec.router.metricsUrl may name besides a Service of the resource's namespace "
        "(the chart's router); repeatable",
    )
    parser.add_argument(
        "--wake-poll",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often the router of a pool asleep at zero replicas is asked for held requests, which "
        "wake the pool at once instead of at the next cycle (2; one small read per sleeping pool)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--once", action="store_true", help="one election step and one cycle per resource, then exit"
    )


def settings_from(args: argparse.Namespace) -> ControllerSettings:
    for flag in ("--health-port", "--keda-port", "--external-metrics-port"):
        checks.port(flag, getattr(args, flag[2:].replace("-", "_")))
    if args.lease_duration < 1 or not 0 < args.renew_every < args.lease_duration:
        raise ValueError("need --lease-duration >= 1 and 0 < --renew-every < --lease-duration")
    if not 0.1 <= args.wake_poll <= 300:
        raise ValueError("--wake-poll must be within 0.1..300 seconds")
    if args.external_metrics_port is not None and (args.tls_cert is None or args.tls_key is None):
        raise ValueError("--external-metrics-port needs --tls-cert and --tls-key")
    identity = args.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    lease_namespace = args.lease_namespace or os.environ.get("POD_NAMESPACE") or args.namespace or "default"
    return ControllerSettings(
        identity=identity,
        lease_namespace=lease_namespace,
        namespace=args.namespace,
        lease_name=args.lease_name,
        lease_duration_s=args.lease_duration,
        renew_every_s=args.renew_every,
        wake_poll_s=args.wake_poll,
    )


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    try:
        settings = settings_from(args)
    except ValueError as error:
        print(f"autoscaler controller: error: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args, settings))
    except errors.KubernetesError as error:
        log.error(str(error))
        return 2 if error.reason == "ConfigError" else 1


async def _main(args: argparse.Namespace, settings: ControllerSettings) -> int:
    board = DesiredReplicasBoard()
    metrics = ControllerMetrics()
    metrics.registry.register(DesiredReplicasCollector(board))
    async with await connect(kubeconfig=args.kubeconfig, context=args.context) as api:
        controller = build_controller(
            api,
            settings=settings,
            signals=PrometheusSignals(args.prometheus, ca_bundle=args.prometheus_ca_bundle),
            board=board,
            clock=_WallClock(),
            metrics=metrics,
            router=RouterLoadReader(allowed_hosts=frozenset(args.router_metrics_host)),
        )
        if args.once:
            return await _once(controller)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        log.info("controller starting", extra={"fields": {"identity": settings.identity}})
        async with _board_servers(args, board):
            await controller.run(stop, health_host=args.health_host, health_port=args.health_port)
    return 0


def build_controller(
    api_client: client.ApiClient,
    *,
    settings: ControllerSettings,
    signals: SignalReader,
    board: DesiredReplicasBoard,
    clock: ports.Clock,
    metrics: ControllerMetrics | None = None,
    router: RouterLoadReader | None = None,
) -> Controller:
    """The controller with its clients, every Kubernetes one over ``api_client`` with the settings' request
    time-out (the Lease's no longer than a renewal period, so a slow API server cannot outlast the lease)."""
    timeout = settings.request_timeout_s
    cluster = ClusterClients(
        resources=CustomResources(api_client, KIND, timeout_s=timeout),
        scales=ScaleClient(api_client, timeout_s=timeout),
        pods=PodClient(api_client, timeout_s=timeout),
        events=EventRecorder(api_client, instance=settings.identity, clock=clock, timeout_s=timeout),
        foreign=ForeignAutoscalerFinder(api_client, timeout_s=timeout),
        signals=signals,
        router=router or RouterLoadReader(),
        board=board,
    )
    elector = LeaseElector(
        api_client,
        namespace=settings.lease_namespace,
        name=settings.lease_name,
        identity=settings.identity,
        lease_duration_s=settings.lease_duration_s,
        clock=clock,
        timeout_s=min(timeout, settings.renew_every_s),
    )
    return Controller(settings=settings, cluster=cluster, elector=elector, clock=clock, metrics=metrics)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the controller's handlers stop everything in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _board_servers(args: argparse.Namespace, board: DesiredReplicasBoard) -> AsyncIterator[None]:
    """The KEDA scaler and the external metrics API, when asked for, serving the board until the end."""
    async with contextlib.AsyncExitStack() as stack:
        if args.keda_port is not None:
            scaler = await serve_keda(board, host=args.keda_host, port=args.keda_port)
            stack.push_async_callback(scaler.server.stop, 5.0)
            log.info("serving the KEDA external scaler", extra={"fields": {"port": scaler.port}})
        if args.external_metrics_port is not None:
            tls = TlsFiles(certfile=args.tls_cert, keyfile=args.tls_key, client_ca=args.tls_client_ca)
            server = external_metrics_server(
                board, host=args.external_metrics_host, port=args.external_metrics_port, tls=tls
            )
            server.__class__ = _Server
            task = asyncio.create_task(server.serve(), name="external-metrics")
            stack.push_async_callback(_stopped, server, task)
            log.info(
                "serving the external metrics API", extra={"fields": {"port": args.external_metrics_port}}
            )
        yield


async def _stopped(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await task


async def _once(controller: Controller) -> int:
    if not await controller.elect():
        if not controller.gate.reachable:
            log.error("cannot reach the API server", extra={"fields": {"error": controller.gate.last_error}})
        else:
            holder = controller.gate.holder or "another replica"
            log.warning(f"not the leader: {holder} holds the lease")
        return 1
    try:
        await controller.sync()
        outcomes = [await controller.reconcile(*key) for key in controller.tracked()]
    finally:
        await controller.gate.release()
    return 0 if all(outcome == "decided" for outcome in outcomes) else 1

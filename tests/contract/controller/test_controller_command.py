"""``autoscaler controller`` as a real process against the fake API server (through a kubeconfig) and the
fake Prometheus: --once acts and exits, the long-running loop stops on SIGTERM releasing the lease, logs are
JSON lines, the desired replicas reach KEDA, the external metrics API and /metrics, and bad options exit
2."""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import signal
import ssl
import sys
import time

import grpc.aio
import httpx
import yaml

from autoscaler.adapters.keda import externalscaler_pb2 as pb
from autoscaler.adapters.keda import externalscaler_pb2_grpc as pb_grpc
from autoscaler.cli import controller as controller_command
from tests.contract.controller.conftest import (
    POOL,
    add_autoscaler,
    add_pool,
    autoscaler,
    heavy,
    replicas,
    status,
)
from tests.contract.external_metrics.conftest import pki  # noqa: F401  (the throwaway CA, as a fixture)
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import LEASES
from tests.fakes.prometheus_api import FakePrometheus
from tests.integration.prometheus_server import free_port


def _kubeconfig(path: pathlib.Path, server: str) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "autoscaler", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "autoscaler"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(document))
    return str(path)


def _command(kube: FakeKubeApiServer, prom: FakePrometheus, tmp_path: pathlib.Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autoscaler",
        "controller",
        "--namespace",
        "default",
        "--prometheus",
        prom.url,
        "--kubeconfig",
        _kubeconfig(tmp_path / "config", kube.url),
        "--identity",
        "cli-test",
        *extra,
    ]


def _json_lines(stderr: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]


async def test_once_runs_one_cycle_per_resource_and_releases_the_lease(
    kube: FakeKubeApiServer, prom: FakePrometheus, tmp_path: pathlib.Path
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)

    process = await asyncio.create_subprocess_exec(
        *_command(kube, prom, tmp_path, "--once"), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, stderr.decode()
    assert replicas(kube, "decode") > 1
    assert status(kube)["phases"]["decode"]["desiredReplicas"] == replicas(kube, "decode")
    assert kube.get(LEASES, "inference-autoscaler")["spec"]["holderIdentity"] == ""
    assert all({"time", "level", "message"} <= set(line) for line in _json_lines(stderr))


async def test_sigterm_stops_the_loop_gracefully(
    kube: FakeKubeApiServer, prom: FakePrometheus, tmp_path: pathlib.Path
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    process = await asyncio.create_subprocess_exec(
        *_command(
            kube, prom, tmp_path, "--health-host", "127.0.0.1", "--health-port", "0", "--renew-every", "1"
        ),
        stderr=asyncio.subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while status(kube).get("lastDecisionTime") is None:
        assert time.monotonic() < deadline and process.returncode is None
        await asyncio.sleep(0.1)
    assert kube.get(LEASES, "inference-autoscaler")["spec"]["holderIdentity"] == "cli-test"

    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, stderr.decode()
    assert kube.get(LEASES, "inference-autoscaler")["spec"]["holderIdentity"] == ""
    messages = [line["message"] for line in _json_lines(stderr)]
    assert "leadership acquired" in messages and "controller stopped" in messages
    assert POOL in {line.get("autoscaler") for line in _json_lines(stderr)} or replicas(kube, "decode") > 1


async def test_bad_options_exit_2(
    kube: FakeKubeApiServer, prom: FakePrometheus, tmp_path: pathlib.Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        *_command(kube, prom, tmp_path, "--lease-duration", "5", "--renew-every", "5"),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2 and b"--renew-every" in stderr


async def test_one_process_serves_the_decision_to_keda_the_external_metrics_api_and_metrics(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    tmp_path: pathlib.Path,
    pki: pathlib.Path,  # noqa: F811  (the fixture imported above)
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler(mode="advisory"))
    heavy(prom)
    health, keda_port, external = free_port(), free_port(), free_port()
    tls = ["--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key")]
    ports = [
        "--health-port",
        str(health),
        "--keda-port",
        str(keda_port),
        "--external-metrics-port",
        str(external),
    ]
    process = await asyncio.create_subprocess_exec(
        *_command(kube, prom, tmp_path, "--health-host", "127.0.0.1", *ports, *tls),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while status(kube).get("lastDecisionTime") is None:
            assert time.monotonic() < deadline and process.returncode is None
            await asyncio.sleep(0.1)
        desired = status(kube)["phases"]["decode"]["desiredReplicas"]

        path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/autoscaler_desired_replicas"
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=pki / "ca.crt")) as https:
            listed = await https.get(
                f"https://127.0.0.1:{external}{path}",
                params={"labelSelector": f"autoscaler={POOL},phase=decode"},
            )
        assert listed.status_code == 200 and listed.json()["items"][0]["value"] == str(desired)

        async with grpc.aio.insecure_channel(f"127.0.0.1:{keda_port}") as channel:
            ref = pb.ScaledObjectRef(
                name="decode", namespace="default", scalerMetadata={"autoscaler": POOL, "phase": "decode"}
            )
            answer = await pb_grpc.ExternalScalerStub(channel).GetMetrics(
                pb.GetMetricsRequest(scaledObjectRef=ref)
            )
        assert answer.metricValues[0].metricValueFloat == desired

        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{health}/metrics")).text
        labels = f'autoscaler="{POOL}",namespace="default",phase="decode"'
        assert f"autoscaler_desired_replicas{{{labels}}} {float(desired)}" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()


async def test_the_external_metrics_api_needs_its_certificate(
    kube: FakeKubeApiServer, prom: FakePrometheus, tmp_path: pathlib.Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        *_command(kube, prom, tmp_path, "--external-metrics-port", "6443"), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2 and b"--tls-cert" in stderr


async def test_once_with_the_api_server_down_says_so_not_that_another_replica_leads(
    prom: FakePrometheus, tmp_path: pathlib.Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    command = [
        sys.executable,
        "-m",
        "autoscaler",
        "controller",
        "--prometheus",
        prom.url,
        "--kubeconfig",
        _kubeconfig(tmp_path / "config", dead),
        "--once",
    ]
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 1, stderr.decode()
    messages = [line["message"] for line in _json_lines(stderr)]
    assert "cannot reach the API server" in messages
    assert not any("holds the lease" in str(message) for message in messages)


async def test_a_port_out_of_range_exits_2_with_one_line(
    kube: FakeKubeApiServer, prom: FakePrometheus, tmp_path: pathlib.Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        *_command(kube, prom, tmp_path, "--keda-port", "70000"), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2 and stderr.decode().count("\n") == 1 and b"--keda-port" in stderr


def test_every_server_binds_the_loopback_unless_told_otherwise() -> None:
    parser = argparse.ArgumentParser()
    controller_command.add_arguments(parser)
    args = parser.parse_args(["--prometheus", "http://127.0.0.1:9090"])
    assert (args.health_host, args.keda_host, args.external_metrics_host) == ("127.0.0.1",) * 3

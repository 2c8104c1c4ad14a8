"""connect() builds a working official client from a kubeconfig; a broken configuration is a typed error."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.connection import IN_CLUSTER_ENV, connect
from autoscaler.adapters.kubernetes.scale import ScaleClient
from autoscaler.adapters.kubernetes.workload import WorkloadRef
from tests.contract.kubernetes.conftest import add_deployment
from tests.fakes.kube_apiserver import FakeKubeApiServer


def _kubeconfig(path: pathlib.Path, server: str) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "autoscaler", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "autoscaler"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(document))
    return str(path)


async def test_a_kubeconfig_names_the_server_and_the_credentials(
    kube: FakeKubeApiServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IN_CLUSTER_ENV, "10.96.0.1")  # a named kubeconfig wins even inside a pod
    add_deployment(kube, "decode", replicas=3)
    target = WorkloadRef(api_version="apps/v1", kind="Deployment", name="decode", namespace="default")

    async with await connect(kubeconfig=_kubeconfig(tmp_path / "config", kube.url)) as api:
        scale = await ScaleClient(api).read(target)

    assert scale.replicas == 3
    assert kube.requests_to("/scale$")[0].authorization == "Bearer s3cret"


async def test_a_missing_kubeconfig_is_a_configuration_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.Rejected, match="ConfigError"):
        await connect(kubeconfig=str(tmp_path / "absent"))

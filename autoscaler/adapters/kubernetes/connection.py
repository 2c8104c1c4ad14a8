"""Build the official asyncio client: in a pod from its service account, elsewhere from a kubeconfig.

The caller owns the returned ``ApiClient`` and closes it (``async with`` or ``await api.close()``).
"""

from __future__ import annotations

import os

from kubernetes.aio import client, config

from autoscaler.adapters.kubernetes import errors

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"  # set by the kubelet in every pod


async def connect(*, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod and no kubeconfig is named; else the kubeconfig
    (``None``: ``$KUBECONFIG`` or ``~/.kube/config``) and its ``context`` (``None``: the current one)."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None and os.environ.get(IN_CLUSTER_ENV):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (config.ConfigException, OSError) as error:
        raise errors.Rejected(
            "load Kubernetes configuration", status=None, reason="ConfigError", message=str(error)
        ) from error
    return client.ApiClient(configuration)

"""The external metrics API over real TLS on 127.0.0.1, with a throwaway CA made by the ``openssl`` CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from autoscaler.adapters.external_metrics import TlsFiles
from autoscaler.adapters.publishing import DesiredReplicasBoard
from tests.contract.external_metrics.tls_server import serving

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _issue(name: str, *, cwd: Path, extensions: str) -> None:
    """A key and a certificate for ``name``, signed by the test CA in ``cwd``."""
    _openssl("req", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt; server.crt/key for 127.0.0.1; client.crt/key (as the aggregator's front-proxy identity)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make test certificates")
    cwd = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", *EC_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=cwd,
    )  # fmt: skip
    leaf = "basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n"
    _issue("server", cwd=cwd, extensions=leaf + "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _issue("client", cwd=cwd, extensions=leaf + "extendedKeyUsage=clientAuth\n")
    return cwd


@pytest.fixture
def board() -> DesiredReplicasBoard:
    return DesiredReplicasBoard(wall_clock=lambda: 1_700_000_000.0)


@pytest.fixture
async def api(board: DesiredReplicasBoard, pki: Path) -> AsyncIterator[str]:
    async with serving(board, TlsFiles(certfile=pki / "server.crt", keyfile=pki / "server.key")) as url:
        yield url

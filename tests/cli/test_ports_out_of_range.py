"""A port outside 0-65535 is bad input: exit 2 with one line, before anything binds."""

from __future__ import annotations

import pytest

from autoscaler.cli.main import main


@pytest.mark.parametrize("port", ["70000", "-1"], ids=["above the range", "negative"])
def test_emulate_refuses_a_port_out_of_range(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "--profile", "llama-3.1-8b/h100-tp1", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port must be a port number from 0 to 65535" in err

"""Clients as they behave: they give up after a time-out (abandoned, KV freed, a miss), and a prompt longer
than the max model length is refused at arrival (counted, never simulated)."""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest

from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim.driver import RunResult, SimSettings, simulate
from autoscaler.sim.scenario import Scenario, default_scenario_path, load_scenario
from autoscaler.sim.workloads.trace import Trace
from tests.sim.scripted_policy import ScriptedPolicy

ONE_EACH = {Phase.PREFILL: 1, Phase.DECODE: 1}


def _overload(n: int = 1200) -> Trace:
    """40 req/s of 4000-token prompts on one prefill replica: the queue grows far past any time-out."""
    arrivals = np.arange(n) / 40.0
    return Trace(name="overload", arrival_s=arrivals, prompt_tokens=[4000] * n, output_tokens=[200] * n)


def _run(trace: Trace, profile: Profile, slo: Slo, *, seed: int = 0, **settings: float) -> RunResult:
    sim = SimSettings(mode=ServingMode.DISAGGREGATED, slo=slo, initial_replicas=ONE_EACH, **settings)  # type: ignore[arg-type]
    policy = ScriptedPolicy.fixed(ONE_EACH)
    return simulate(
        trace, profile=profile, policy=policy, placer=LeastLoadedPlacer(), settings=sim, seed=seed
    )


@pytest.mark.parametrize(
    ("name", "timeout_s", "abandons"),
    [
        ("a short time-out abandons the backlog", 5.0, True),
        ("the default 300 s is longer than the run", 300.0, False),
    ],
)
def test_clients_give_up_after_their_time_out(
    profile: Profile, slo: Slo, name: str, timeout_s: float, abandons: bool
) -> None:
    result = _run(_overload(), profile, slo, client_timeout_s=timeout_s)
    assert (result.abandoned > 0) is abandons, name
    served = result.e2e_s[np.isfinite(result.e2e_s)]
    if abandons:
        assert served.max() <= timeout_s + 1.0, name  # nobody waits much past the time-out
        assert result.abandoned + served.size == len(result.e2e_s), name  # every request accounted for
        assert np.isnan(result.ttft_s).sum() >= result.abandoned, name  # an abandoned request is a miss


def test_abandoning_frees_the_engines(profile: Profile, slo: Slo) -> None:
    """With the backlog abandoned, the requests that stay are served sooner than when everyone waits."""
    patient = _run(_overload(), profile, slo, client_timeout_s=300.0)
    impatient = _run(_overload(), profile, slo, client_timeout_s=5.0)
    assert np.nanmedian(impatient.ttft_s) < np.nanmedian(patient.ttft_s)


@pytest.mark.parametrize(
    ("name", "max_model_len", "rejected"),
    [
        ("beyond the max model length: refused", 4000, 4),
        ("within it: served", 8192, 0),
        ("unset: the KV capacity decides", None, 0),
    ],
)
def test_prompts_beyond_the_max_model_length_are_refused(
    profile: Profile, slo: Slo, name: str, max_model_len: int | None, rejected: int
) -> None:
    n = 8
    trace = Trace(
        name="lengths",
        arrival_s=np.arange(n, dtype=np.float64),
        prompt_tokens=[1000, 5000] * (n // 2),
        output_tokens=[100] * n,
    )
    sim = SimSettings(
        mode=ServingMode.DISAGGREGATED, slo=slo, initial_replicas=ONE_EACH, max_model_len=max_model_len
    )
    policy = ScriptedPolicy.fixed(ONE_EACH)
    result = simulate(trace, profile=profile, policy=policy, placer=LeastLoadedPlacer(), settings=sim, seed=0)
    assert result.rejected == rejected, name
    assert int(np.isnan(result.e2e_s).sum()) == rejected, name


def test_time_outs_keep_the_run_byte_stable(profile: Profile, slo: Slo) -> None:
    first = _run(_overload(600), profile, slo, seed=3, client_timeout_s=5.0)
    second = _run(_overload(600), profile, slo, seed=3, client_timeout_s=5.0)
    assert first.abandoned == second.abandoned > 0
    np.testing.assert_array_equal(first.e2e_s, second.e2e_s)
    assert math.isclose(first.gpu_seconds, second.gpu_seconds)


@pytest.mark.parametrize(
    ("name", "update", "accepted"),
    [
        ("the default time-out is 300 s", {}, True),
        ("a time-out must be positive", {"client_timeout_s": 0}, False),
        ("a max model length below 2 is refused", {"cluster": {"max_model_len": 1}}, False),
        ("the router's counters may feed the signals", {"control": {"signal_source": "router"}}, True),
        ("an unknown signal source is refused", {"control": {"signal_source": "gateway"}}, False),
    ],
)
def test_scenario_realism_settings_are_validated(
    name: str, update: dict[str, object], accepted: bool
) -> None:
    data = load_scenario(default_scenario_path()).model_dump()
    for key, value in update.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    if accepted:
        scenario = Scenario.model_validate(data)
        assert scenario.client_timeout_s == data["client_timeout_s"], name
    else:
        with pytest.raises(pydantic.ValidationError):
            Scenario.model_validate(data)

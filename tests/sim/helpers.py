"""Running the simulator in tests."""

from __future__ import annotations

from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim.driver import RunResult, SimSettings, simulate
from autoscaler.sim.workloads.trace import Trace
from tests.sim.scripted_policy import ScriptedPolicy


def run(
    trace: Trace,
    *,
    profile: Profile,
    slo: Slo,
    policy: ScriptedPolicy,
    initial: dict[Phase, int],
    seed: int = 0,
    drain_s: float = 900.0,
    pending_delay_s: float = 0.0,
    client_timeout_s: float = 300.0,
) -> RunResult:
    mode = ServingMode.AGGREGATED if Phase.AGGREGATED in initial else ServingMode.DISAGGREGATED
    settings = SimSettings(
        mode=mode,
        slo=slo,
        initial_replicas=initial,
        drain_s=drain_s,
        pending_delay_s=pending_delay_s,
        client_timeout_s=client_timeout_s,
    )
    return simulate(
        trace, profile=profile, policy=policy, placer=LeastLoadedPlacer(), settings=settings, seed=seed
    )

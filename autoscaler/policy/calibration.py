"""Bounded online correction of the profile from observed versus predicted latency.

Profiles are priors (their figures come from other engine versions and other workloads). Each step, where
the model is in its valid regime, the ratio observed/predicted of the phase's SLO latency (TTFT for
prefill, ITL for decode and aggregated) is smoothed in log space and clamped, and fades back to 1 when
no fresh evidence comes. It scales the profile's times for that phase in sizing, and the controller reports
it in status. (The router's load gate reads the same profile, but not this correction yet.)
"""

from __future__ import annotations

import math
from typing import TypeVar

from autoscaler.core.phases import Phase
from autoscaler.policy.settings import Calibration
from autoscaler.profiles.schema import Profile, Quantity

_Q = TypeVar("_Q", bound=Quantity)


def update(previous: float, *, observed: float, predicted: float, settings: Calibration) -> float:
    if not (settings.enabled and observed > 0 and predicted > 0):
        return previous
    ratio = observed / predicted
    blended = math.exp((1 - settings.smoothing) * math.log(previous) + settings.smoothing * math.log(ratio))
    return min(settings.maximum, max(settings.minimum, blended))


def relax(previous: float, *, elapsed_s: float, settings: Calibration) -> float:
    """Let a correction fade back to 1 with ``half_life_s``: evidence ages, and a correction learned in a
    transient (a burst that outran the model) must not ratchet the pool up for good."""
    return float(1.0 + (previous - 1.0) * 0.5 ** (max(elapsed_s, 0.0) / settings.half_life_s))


def corrected(profile: Profile, *, factor: float, phase: Phase) -> Profile:
    """The profile with this phase's times scaled by ``factor`` (1 returns it unchanged)."""
    if factor == 1.0:
        return profile
    changes: dict[str, object] = {}
    if phase in (Phase.PREFILL, Phase.AGGREGATED):
        changes["prefill"] = profile.prefill.model_copy(
            update={
                "per_token_s": _scaled(profile.prefill.per_token_s, factor),
                "per_attention_pair_s": _scaled(profile.prefill.per_attention_pair_s, factor),
                "per_step_s": _scaled(profile.prefill.per_step_s, factor),
            }
        )
    if phase in (Phase.DECODE, Phase.AGGREGATED):
        changes["decode"] = profile.decode.model_copy(
            update={
                "per_sequence_s": _scaled(profile.decode.per_sequence_s, factor),
                "per_context_token_s": _scaled(profile.decode.per_context_token_s, factor),
            }
        )
    changes["step"] = profile.step.model_copy(update={"base_s": _scaled(profile.step.base_s, factor)})
    return profile.model_copy(update=changes)


def _scaled(quantity: _Q, factor: float) -> _Q:
    return quantity.model_copy(update={"value": quantity.value * factor})

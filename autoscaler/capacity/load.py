"""A load to size for, and the prompt-length distribution behind it.

Prompt lengths are modelled as log-normal with the given mean and coefficient of variation (the public
traces fit that shape: Azure conversation CV ≈ 0.5, Mooncake ≈ 1.45), which is what turns a TTFT
*percentile* target into a prompt-length percentile.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]


def _array(value: npt.ArrayLike) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


@dataclasses.dataclass(frozen=True, slots=True)
class LoadLimits:
    """What a load may ask of the model; the edges (CLI, policy signal check, scenarios) refuse more.

    Far above any one serving pool (the largest public traces peak near 1e3 req/s; 1e7 tokens is the longest
    context window any served model advertises), yet small enough that sizing stays finite arithmetic. The
    solvers' cost is bounded whatever they are given; these bounds keep the answers meaningful.
    """

    max_rate_per_s: float = 1e6
    max_tokens: float = 1e7
    max_cv: float = 50.0  # coefficients of variation (the heaviest-tailed public trace: about 3)

    def problems(
        self, *, rate: float | None, prompt_tokens: float | None, output_tokens: float | None
    ) -> tuple[str, ...]:
        """One phrase per value above its bound or not finite (None: not given, not checked)."""
        checks = (
            ("arrival rate", rate, self.max_rate_per_s, "req/s"),
            ("mean prompt length", prompt_tokens, self.max_tokens, "tokens"),
            ("mean output length", output_tokens, self.max_tokens, "tokens"),
        )
        return tuple(
            f"{name} {value:g} outside the model's range (at most {high:g} {unit})"
            for name, value, high, unit in checks
            if value is not None and not value <= high  # also true for NaN
        )


LIMITS = LoadLimits()


@dataclasses.dataclass(frozen=True)
class Load:
    """Demand on one pool. Each field is a number or an array (all broadcast together)."""

    rate: FloatArray  # requests/s
    prompt_tokens: FloatArray  # mean prompt length
    output_tokens: FloatArray  # mean output length
    prefix_hit_rate: FloatArray  # fraction of prompt tokens served from cache, 0..1
    arrival_cv: FloatArray  # CV of inter-arrival times (1 = Poisson)
    prompt_cv: FloatArray  # CV of prompt lengths
    output_cv: FloatArray  # CV of output lengths

    @classmethod
    def of(
        cls,
        *,
        rate: npt.ArrayLike,
        prompt_tokens: npt.ArrayLike,
        output_tokens: npt.ArrayLike,
        prefix_hit_rate: npt.ArrayLike = 0.0,
        arrival_cv: npt.ArrayLike = 1.0,
        prompt_cv: npt.ArrayLike = 1.0,
        output_cv: npt.ArrayLike = 1.0,
    ) -> Load:
        fields = np.broadcast_arrays(
            _array(rate),
            _array(prompt_tokens),
            _array(output_tokens),
            np.clip(_array(prefix_hit_rate), 0.0, 0.99),
            _array(arrival_cv),
            _array(prompt_cv),
            _array(output_cv),
        )
        load = cls(*(np.array(f) for f in fields))
        if np.any(load.rate < 0) or not np.all(np.isfinite(load.rate)):
            raise ValueError("arrival rate must be a finite number >= 0")
        if np.any(load.prompt_tokens < 1) or np.any(load.output_tokens < 1):
            raise ValueError("prompt and output token means must be >= 1")
        if np.any(load.arrival_cv < 0) or np.any(load.prompt_cv < 0) or np.any(load.output_cv < 0):
            raise ValueError("coefficients of variation must be >= 0")
        return load

    def with_rate(self, rate: FloatArray) -> Load:
        return dataclasses.replace(self, rate=np.asarray(rate, dtype=np.float64))

    @property
    def uncached_fraction(self) -> FloatArray:
        return 1.0 - self.prefix_hit_rate

    def prompt_quantile(self, quantile: float) -> FloatArray:
        """The ``quantile`` of a log-normal prompt length with this mean and CV."""
        sigma2 = np.log1p(self.prompt_cv**2)
        median = self.prompt_tokens / np.sqrt(1.0 + self.prompt_cv**2)
        z = float(np.sqrt(2.0) * special.erfinv(2.0 * quantile - 1.0))
        return np.asarray(median * np.exp(z * np.sqrt(sigma2)), dtype=np.float64)

    @property
    def prompt_second_moment(self) -> FloatArray:
        return np.asarray(self.prompt_tokens**2 * (1.0 + self.prompt_cv**2), dtype=np.float64)


def normal_quantile(quantile: float) -> float:
    return float(np.sqrt(2.0) * special.erfinv(2.0 * quantile - 1.0))

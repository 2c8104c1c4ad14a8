"""Token-length distributions: log-normal fits to the published statistics of the public traces.

A log-normal has median ``exp(mu)`` and mean ``exp(mu + sigma**2 / 2)``, so the median and the mean fix it:
``mu = ln(median)``, ``sigma = sqrt(2 ln(mean / median))``. LLM prompt lengths have heavy right tails, and
two published numbers pin the fit without the raw data. The p99 is the check:

| preset                | tokens | published mean / p50 / p99 | fitted on    | sampled mean / p50 / p99    |
|-----------------------|--------|----------------------------|--------------|-----------------------------|
| azure-conversation    | prompt | 1,155 / 1,020 / 4,142      | mean, median | 1,155 / 1,020 / 3,260       |
| azure-conversation    | output | 211 / 129 / 601            | mean, median | 201 / 129 / 1,000 (clipped) |
| mooncake-conversation | input  | 12,035 / 6,909 / 85,400    | mean, median | 11,950 / 6,930 / 81,100     |
| mooncake-conversation | output | 343 / 350 / 1,119          | mean, p99    | 343 / 290 / 1,120           |

Azure's outputs have a lighter tail than a log-normal (p99 601, capped at 1,000): the fit over-states the
output tail and, after clipping, under-states the mean by 5 %.

A mean below the median (Mooncake's output) is impossible for a log-normal; there the mean and the p99 fix it
instead (``ln(p99 / mean) = z99 sigma - sigma**2 / 2``), since the mean drives decode load in a simulator and
the p99 drives KV headroom, while the median matters least. Samples are rounded and clipped to
``[low, high]``: at least one token, at most a context window (Azure's outputs are capped at 1,000 in the
data, Mooncake's inputs at 128k).
"""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np

from autoscaler.sim.workloads import trace as trace_mod

__all__ = ["PRESETS", "LengthPreset", "LogNormalLengths"]

_Z99 = 2.3263478740408408  # standard normal 99th percentile


@dataclasses.dataclass(frozen=True, slots=True)
class LogNormalLengths:
    """``round(exp(N(mu, sigma)))`` clipped to ``[low, high]`` tokens."""

    mu: float
    sigma: float
    low: int = 1
    high: int = 131_072

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"need finite mu and sigma >= 0, got mu={self.mu}, sigma={self.sigma}")
        if not 0 <= self.low <= self.high:
            raise ValueError(f"need 0 <= low <= high, got [{self.low}, {self.high}]")

    @classmethod
    def fit(
        cls, *, mean: float, median: float, p99: float, low: int = 1, high: int = 131_072
    ) -> LogNormalLengths:
        """Fits the mean and median, or the mean and p99 when the mean is not above the median."""
        if not 0 < median < p99 or mean <= 0:
            raise ValueError(f"need 0 < median < p99 and mean > 0, got {mean}, {median}, {p99}")
        if mean > median:
            return cls(mu=math.log(median), sigma=math.sqrt(2 * math.log(mean / median)), low=low, high=high)
        # sigma**2 / 2 - z99 sigma + ln(p99 / mean) = 0, the smaller root (the larger one fits a huge tail)
        gap = math.log(p99 / mean)
        discriminant = _Z99**2 - 2 * gap
        if discriminant < 0:
            raise ValueError(f"no log-normal has mean {mean} and p99 {p99}")
        sigma = _Z99 - math.sqrt(discriminant)
        return cls(mu=math.log(mean) - sigma**2 / 2, sigma=sigma, low=low, high=high)

    def quantile(self, q: float) -> float:
        """The unclipped ``q``-quantile, 0 < q < 1."""
        return math.exp(self.mu + self.sigma * statistics.NormalDist().inv_cdf(q))

    def sample(self, rng: np.random.Generator, size: int) -> trace_mod.IntArray:
        draws = np.rint(rng.lognormal(self.mu, self.sigma, size=size))
        return np.clip(draws, self.low, self.high).astype(np.int64)

    def at(self, z: trace_mod.FloatArray) -> trace_mod.IntArray:
        """The lengths at standard-normal scores ``z`` (``sample`` draws the scores itself)."""
        return np.clip(np.rint(np.exp(self.mu + self.sigma * z)), self.low, self.high).astype(np.int64)


@dataclasses.dataclass(frozen=True, slots=True)
class LengthPreset:
    """Prompt and output length distributions of one workload.

    ``correlation`` is that of the two lengths' normal scores (a Gaussian copula: each length keeps its
    own log-normal, their logs are correlated). Production mixes are not independent: a client that sends
    long prompts (documents, code) often asks for long answers too, and the clients with short prompts
    are often the chat ones with short outputs, which an independent draw averages away. At 0 the draws
    are exactly those of independent sampling, so existing workloads keep their bytes.
    """

    prompt: LogNormalLengths
    output: LogNormalLengths
    correlation: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.correlation) and -1.0 <= self.correlation <= 1.0):
            raise ValueError(f"correlation must lie in [-1, 1], got {self.correlation}")

    def sample(self, rng: np.random.Generator, size: int) -> tuple[trace_mod.IntArray, trace_mod.IntArray]:
        """(prompt, output) lengths of ``size`` requests."""
        if self.correlation == 0.0:
            return self.prompt.sample(rng, size), self.output.sample(rng, size)
        first, second = rng.standard_normal((2, size))
        rho = self.correlation
        return self.prompt.at(first), self.output.at(rho * first + math.sqrt(1.0 - rho * rho) * second)


PRESETS: dict[str, LengthPreset] = {
    "azure-conversation": LengthPreset(
        prompt=LogNormalLengths.fit(mean=1_155, median=1_020, p99=4_142, high=16_384),
        output=LogNormalLengths.fit(mean=211, median=129, p99=601, high=1_000),
    ),
    "mooncake-conversation": LengthPreset(
        prompt=LogNormalLengths.fit(mean=12_035, median=6_909, p99=85_400, high=131_072),
        output=LogNormalLengths.fit(mean=343, median=350, p99=1_119, high=4_096),
    ),
}

"""What a phase solver returns: replicas and the predictions behind them, as arrays."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class PhaseSizing:
    """One phase's answer for every point of a load grid.

    ``replicas`` is inf where no replica count meets the target (the SLO is below the unloaded latency);
    ``binding`` names the constraint that set the count at each point.
    """

    replicas: FloatArray
    ttft_s: FloatArray  # predicted TTFT at the SLO percentile, with ``replicas`` replicas
    itl_s: FloatArray  # predicted ITL at the SLO percentile
    utilisation: FloatArray  # busy fraction (prefill) or mean batch / max batch at the SLO (decode)
    binding: npt.NDArray[np.str_]

    @property
    def feasible(self) -> npt.NDArray[np.bool_]:
        return np.isfinite(self.replicas)

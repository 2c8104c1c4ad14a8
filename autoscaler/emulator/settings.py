"""What one emulated replica is: its model name, role in P/D, speed-up and the vLLM options it mirrors."""

from __future__ import annotations

import dataclasses
import enum

from autoscaler.routing.hashing import PreciseAlgo


class Role(enum.StrEnum):
    """The replica's part in P/D, as vLLM's ``kv_role`` (kv_producer / kv_consumer / kv_both)."""

    PREFILL = "prefill"  # answers ``do_remote_decode`` requests with ``kv_transfer_params``
    DECODE = "decode"  # takes ``do_remote_prefill`` requests: their prompt KV arrives, no prefill compute
    BOTH = "both"

    @property
    def produces_kv(self) -> bool:
        return self is not Role.DECODE

    @property
    def consumes_kv(self) -> bool:
        return self is not Role.PREFILL


@dataclasses.dataclass(frozen=True, slots=True)
class EmulatorSettings:
    model: str  # the served model name (``model`` in requests, ``model_name`` in metrics)
    speed: float = 1.0  # engine seconds per wall-clock second
    role: Role = Role.BOTH
    max_model_len: int = 8192
    num_gpu_blocks_override: int | None = None  # KV capacity in blocks instead of the profile's
    hash_algo: PreciseAlgo = PreciseAlgo.SHA256
    host: str = "127.0.0.1"  # advertised in ``kv_transfer_params`` (``remote_host``)
    side_channel_port: int = 5600  # advertised as ``remote_port`` (vLLM's NIXL side-channel default)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if self.max_model_len < 2:
            raise ValueError(f"max_model_len must be at least 2, got {self.max_model_len}")
        if self.num_gpu_blocks_override is not None and self.num_gpu_blocks_override < 1:
            raise ValueError(f"num_gpu_blocks_override must be positive, got {self.num_gpu_blocks_override}")

"""The engine model driven at the wall clock's pace, each request's tokens released when the model makes them.

``RealtimeEngine`` owns one ``ReplicaEngine`` and an asyncio task (``run``) that keeps it caught up with
*engine time* = wall-clock seconds since start x ``speed``. The engine jumps from event to event; between
two events every step takes the same time (``ReplicaEngine.segment``), so a decoding sequence's ``j``-th
token is produced when virtual step ``step0 + j`` ends. The task wakes at every step boundary while
something decodes, hands the tokens produced so far to their ``Generation`` (which the HTTP layer streams)
with their exact engine times, and advances the engine at each of its events. Before every ``advance`` the
tokens of the segment that ends are handed out first, because the next segment has other step times.

Time stamps in metrics come from the model (token ``j``'s step end), not from when the task woke, so the
histograms are exact whatever the scheduling jitter; a client sees the same times divided by ``speed``,
plus that jitter.

P/D: a request carrying remote-prefill ``kv_transfer_params`` skips prefill. Its KV (the blocks not in the
local prefix cache) arrives after ``Profile.kv_transfer_time``, then it joins the batch as a sequence whose
KV is complete, like a sequence the simulator hands from a prefill to a decode replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence

from autoscaler.emulator import metrics as vm
from autoscaler.emulator.kv_events import KvEventPublisher, PromptBlocks, RecordingPrefixCache
from autoscaler.emulator.settings import EmulatorSettings
from autoscaler.engine.replica import ReplicaEngine, Segment
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.schema import Profile
from autoscaler.routing.hashing import precise_block_hashes

_NAN = math.nan
# Shortest sleep of the clock task, wall seconds: at high ``speed`` steps are shorter than one pass of the
# loop, and tokens due together are then handed out together (their recorded times stay exact).
MIN_WAKE_S = 0.001


class Generation:
    """One request as its client sees it: output token times (engine seconds) and how it ended."""

    __slots__ = ("admitted", "changed", "finish_reason", "max_tokens", "seq", "token_times", "transferred")

    def __init__(self, seq: EngineSequence, *, max_tokens: int, transferred: bool) -> None:
        self.seq = seq
        self.max_tokens = max_tokens
        self.transferred = transferred  # prompt KV came from a remote prefill
        self.admitted = _NAN  # when the engine first scheduled it
        self.token_times: list[float] = []
        self.finish_reason: str | None = None
        self.changed = asyncio.Event()

    @property
    def prompt_tokens(self) -> int:
        return self.seq.prompt_tokens

    async def tokens(self) -> AsyncIterator[int]:
        """Indices of output tokens as they are produced; ends when the request finishes."""
        sent = 0
        while True:
            while sent < len(self.token_times):
                yield sent
                sent += 1
            if self.finish_reason is not None:
                return
            self.changed.clear()
            await self.changed.wait()


class RequestError(ValueError):
    """A request the engine cannot take (too long for the model or the KV cache)."""


class RealtimeEngine:
    """A ``ReplicaEngine`` kept in step with the wall clock (see the module docstring)."""

    def __init__(
        self,
        profile: Profile,
        settings: EmulatorSettings,
        *,
        publisher: KvEventPublisher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.settings = settings
        self.block_size = profile.block_size
        override = settings.num_gpu_blocks_override
        capacity = override * self.block_size if override else profile.kv_capacity_tokens
        self.num_gpu_blocks = int(capacity // self.block_size)
        self.engine = ReplicaEngine(profile, block_tokens=self.block_size, kv_capacity_tokens=capacity)
        self._recorder: RecordingPrefixCache | None = None
        if publisher is not None:
            self._recorder = RecordingPrefixCache(block_size=self.block_size)
            self.engine.cache = self._recorder
        self._publisher = publisher
        self.metrics = vm.VllmMetrics(
            model_name=settings.model,
            max_model_len=settings.max_model_len,
            cache_config=self.cache_config(),
            kv_consumer=settings.role.consumes_kv,
        )
        self._clock = clock
        self._t0 = clock()
        self._uids = itertools.count()
        self._active: dict[int, Generation] = {}
        self._transfers: list[tuple[float, int, Generation]] = []  # (KV arrival, uid, request), a heap
        self._wake = asyncio.Event()

    def cache_config(self) -> dict[str, str]:
        """``vllm:cache_config_info``'s labels: vLLM's CacheConfig fields as strings."""
        return {
            "block_size": str(self.block_size),
            "cache_dtype": "auto",
            "calculate_kv_scales": "False",
            "cpu_offload_gb": "0",
            "enable_prefix_caching": "True",
            "gpu_memory_utilization": "0.9",
            "is_attention_free": "False",
            "num_cpu_blocks": "None",
            "num_gpu_blocks": str(self.num_gpu_blocks),
            "num_gpu_blocks_override": str(self.settings.num_gpu_blocks_override),
            "prefix_caching_hash_algo": self.settings.hash_algo.value,
            "sliding_window": "None",
            "swap_space": "4",
        }

    def now(self) -> float:
        """Engine seconds since start."""
        return (self._clock() - self._t0) * self.settings.speed

    # --- requests ----------------------------------------------------------------------------------------

    def submit(
        self, prompt_ids: Sequence[int], *, max_tokens: int, remote_prefill: bool = False
    ) -> Generation:
        """Queue a request now; raises ``RequestError`` when no replica of this shape could serve it."""
        total = len(prompt_ids) + max_tokens
        if not prompt_ids:
            raise RequestError("the prompt is empty")
        if max_tokens < 1:
            raise RequestError(f"max_tokens must be at least 1, got {max_tokens}")
        if total > self.settings.max_model_len:
            raise RequestError(
                f"This model's maximum context length is {self.settings.max_model_len} tokens. However, "
                f"you requested {total} tokens ({len(prompt_ids)} in the messages, {max_tokens} in the "
                "completion)."
            )
        now = self.now()
        self._catch_up(now)
        hashes = PromptBlocks(
            precise_block_hashes(prompt_ids, block_tokens=self.block_size, algo=self.settings.hash_algo),
            prompt_ids,
        )
        seq = EngineSequence(
            next(self._uids),
            prompt_tokens=len(prompt_ids),
            output_tokens=max_tokens,
            arrival=now,
            block_hashes=hashes,
        )
        if not self.engine.fits(seq):
            raise RequestError(f"{total} tokens do not fit in the KV cache ({self.num_gpu_blocks} blocks)")
        gen = Generation(seq, max_tokens=max_tokens, transferred=remote_prefill)
        self._active[seq.uid] = gen
        if remote_prefill:
            # Only the blocks missing here are pulled; the prompt's KV is the prefill replica's work.
            seq.cached_tokens = min(self.engine.cache.match(hashes) * self.block_size, seq.prompt_tokens)
            seq.computed = seq.target
            arrival = now + self.profile.kv_transfer_time(seq.prompt_tokens - seq.cached_tokens)
            heapq.heappush(self._transfers, (arrival, seq.uid, gen))
        else:
            self.engine.admit(seq, now)
        self._publish()
        self._wake.set()
        return gen

    def abort(self, gen: Generation) -> None:
        """The client went away: drop the request from the engine (a no-op once it finished)."""
        if gen.finish_reason is not None:
            return
        now = self.now()
        self._catch_up(now)
        if gen.finish_reason is not None:
            return
        if gen.transferred:  # its KV may still be on the way
            self._transfers = [item for item in self._transfers if item[2] is not gen]
            heapq.heapify(self._transfers)
        self.engine.abort(gen.seq, now)
        self.metrics.aborted()
        self._end(gen, "abort")
        self._wake.set()

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()

    def gauges(self) -> vm.EngineGauges:
        engine = self.engine
        self._catch_up(self.now())
        return vm.EngineGauges(
            running=engine.num_running,
            waiting=engine.num_waiting + len(self._transfers),
            kv_fetching=len(self._transfers),
            kv_usage=min(1.0, engine.kv_usage),
            prefix_queries=engine.query_tokens,
            prefix_hits=engine.hit_tokens,
            preemptions=engine.preemptions,
        )

    # --- the clock ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the engine in step with the wall clock until cancelled."""
        speed = self.settings.speed
        while True:
            now = self.now()
            self._catch_up(now)
            wake_at = min(self.engine.next_event_time(), self._next_transfer(), self._next_step_end(now))
            self._wake.clear()
            timeout = max(MIN_WAKE_S, (wake_at - self.now()) / speed) if math.isfinite(wake_at) else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _next_transfer(self) -> float:
        return self._transfers[0][0] if self._transfers else math.inf

    def _next_step_end(self, now: float) -> float:
        """When the next step ends, if anything in the batch may produce a token then."""
        seg = self.engine.segment
        if not self.engine.running or seg.steps == 0:
            return math.inf
        return seg.end_of(seg.first_step + min(seg.steps, seg.steps_by(now) + 1))

    def _catch_up(self, now: float) -> None:
        """Run the engine and the KV arrivals through every event up to ``now``, handing out tokens."""
        engine = self.engine
        while True:
            event = engine.next_event_time()
            arrival = self._next_transfer()
            if min(event, arrival) > now:
                break
            if arrival <= event:
                _, _, gen = heapq.heappop(self._transfers)
                engine.admit(gen.seq, arrival)
            else:
                seg = engine.segment
                self._hand_out(seg, seg.first_step + seg.steps)
                for seq in engine.advance(event):
                    self._finished(seq)
        seg = engine.segment
        self._hand_out(seg, seg.first_step + seg.steps_by(now))
        self._publish()

    def _hand_out(self, seg: Segment, step: int) -> None:
        """Give every running request the tokens it has produced by the end of virtual ``step``."""
        active = self._active
        for uid, seq in self.engine.running.items():
            gen = active.get(uid)
            if gen is None:
                continue
            if gen.admitted != gen.admitted:  # NaN: admitted at the start of this segment
                gen.admitted = seg.start
            if seq.computed < seq.target:  # (re)computing its prompt: nothing new yet
                continue
            produced = min(seq.output_tokens, step - seq.step0)
            for j in range(len(gen.token_times) + 1, produced + 1):
                # A token made before this segment (sampled by a prefill's last step) dates from its start.
                self._token(gen, seg.start + max(0, seq.step0 + j - seg.first_step) * seg.step_s)

    def _token(self, gen: Generation, at: float) -> None:
        times = gen.token_times
        if times:
            self.metrics.next_token(itl=at - times[-1])
        else:
            self.metrics.first_token(
                ttft=at - gen.seq.arrival,
                prompt_tokens=gen.seq.prompt_tokens,
                cached_tokens=gen.seq.cached_tokens,
                transferred=gen.transferred,
            )
        self.metrics.generation_tokens.inc()
        times.append(at)
        gen.changed.set()

    def _finished(self, seq: EngineSequence) -> None:
        gen = self._active.get(seq.uid)
        if gen is None:
            return
        while len(gen.token_times) < seq.output_tokens:
            self._token(gen, seq.finish_time)
        self.metrics.finished(
            vm.FinishedRequest(
                arrival=seq.arrival,
                admitted=gen.admitted,
                first_token=gen.token_times[0],
                finished=seq.finish_time,
                prompt_tokens=seq.prompt_tokens,
                generated=seq.output_tokens,
                max_tokens=gen.max_tokens,
                preemptions=seq.preemptions,
            )
        )
        self._end(gen, "length")

    def _end(self, gen: Generation, reason: str) -> None:
        del self._active[gen.seq.uid]
        gen.finish_reason = reason
        gen.changed.set()

    def _publish(self) -> None:
        if self._recorder is not None and self._publisher is not None:
            self._publisher.publish(self._recorder.drain())

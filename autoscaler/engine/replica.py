"""One serving replica (a vLLM engine) as a pure, event-driven model.

The model follows vLLM V1's scheduler at the granularity that matters for latency and capacity:

- continuous batching: each step, every decoding sequence produces one token, and the rest of the step's
  token budget (``max_num_batched_tokens``) goes to prompt prefill, first come first served (chunked
  prefill); at most ``max_num_seqs`` sequences run at once;
- a KV cache of the profile's capacity: a sequence is admitted when its whole context fits, decoding grows it
  one token per step, and when the next step would not fit the newest running sequence is preempted (its KV
  dropped, to be recomputed when it is admitted again);
- prefix caching: the leading prompt blocks found in the replica's ``PrefixCache`` are not recomputed;
- step times from the shared time model, ``Profile.step_time``.

It never simulates one token at a time. Between two events the batch is constant, so every step of that
stretch (a "segment") takes the same time, and sequence ``s`` finishes at a known *virtual step*
(``step0 + output_tokens``). Finishing steps sit in a heap; the engine computes only its next event
(the first finish, the end of a prefill chunk, the step at which KV runs out) and the driver calls
``advance`` at that time. ``admit`` may pull the next event earlier (a new sequence joins at the next step
boundary). Within a segment the step time is taken at its start (contexts grow by a few hundred tokens over a
segment, a negligible change in step time), which is what makes the jump exact in steps and cheap in time.

The same object serves a whole replica (aggregated), a prefill replica (``prefill_only``: a sequence leaves
as soon as its prompt KV is computed) or a decode replica (sequences arrive with their KV computed, so
``computed == target``, and only decode; a preempted one is recomputed locally, as vLLM does).

Usage by a driver::

    changed = engine.admit(seq, now)            # True when next_event_time() moved
    t = engine.next_event_time()                # inf when idle
    left = engine.advance(t)                    # sequences that finished (or, prefill_only, were prefilled)

A real-time driver (the emulator) also reads ``segment`` to time each decoding sequence's tokens one step at
a time, and calls ``abort`` when a client goes away.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque

from autoscaler.engine.prefix_cache import PrefixCache
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.schema import Profile

__all__ = ["ReplicaEngine", "Segment"]

_IDLE = 0
_DECODE = 1  # only decoding sequences: runs until the next finish or KV exhaustion
_CHUNK = 2  # the head prompt fills the whole prefill budget for ``_seg_steps`` steps
_PACKED = 3  # one step that finishes the head prompt's prefill and packs the next ones into the budget

_NEVER = math.inf


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """The current stretch of identical steps: step ``first_step + k`` ends at ``start + k * step_s``.

    A decoding sequence has produced ``step - seq.step0`` tokens once virtual step ``step`` has ended, so a
    driver that streams tokens can time each one without the engine simulating single steps.
    """

    first_step: int  # the replica's virtual step when the segment began
    start: float
    step_s: float
    steps: int  # planned steps (the segment ends at the engine's next event)

    def steps_by(self, now: float) -> int:
        """Steps of this segment completed by ``now``."""
        if self.steps == 0:
            return 0
        return min(self.steps, max(0, math.floor((now - self.start) / self.step_s + 1e-9)))

    def end_of(self, step: int) -> float:
        """When virtual step ``step`` (of this segment) ends."""
        return self.start + (step - self.first_step) * self.step_s


class ReplicaEngine:
    """Continuous batching, chunked prefill, KV cache with prefix caching and preemption, for one replica."""

    __slots__ = (
        "_aborting",
        "_base_s",
        "_budget",
        "_capacity",
        "_chunk",
        "_ctx_base_sum",
        "_decode_heap",
        "_dt",
        "_kind",
        "_max_seqs",
        "_n_decoding",
        "_next_t",
        "_packed",
        "_pending_first",
        "_per_context_s",
        "_per_pair_s",
        "_per_sequence_s",
        "_per_token_s",
        "_prefill_alloc",
        "_prefill_step_s",
        "_prefilling",
        "_seg_steps",
        "_seg_t",
        "block_tokens",
        "cache",
        "hit_blocks",
        "hit_tokens",
        "preemptions",
        "prefill_only",
        "query_blocks",
        "query_tokens",
        "running",
        "vstep",
        "waiting",
    )

    def __init__(
        self,
        profile: Profile,
        *,
        prefill_only: bool = False,
        block_tokens: int = 16,
        kv_capacity_tokens: float | None = None,
    ) -> None:
        self._base_s = profile.step.base_s.value
        self._per_sequence_s = profile.decode.per_sequence_s.value
        self._per_context_s = profile.decode.per_context_token_s.value
        self._per_token_s = profile.prefill.per_token_s.value
        self._prefill_step_s = profile.prefill.per_step_s.value
        self._per_pair_s = profile.prefill.per_attention_pair_s.value
        self._budget = profile.max_num_batched_tokens
        self._max_seqs = profile.max_num_seqs
        capacity = profile.kv_capacity_tokens if kv_capacity_tokens is None else kv_capacity_tokens
        self._capacity = int(capacity) if math.isfinite(capacity) else 1 << 62
        self.prefill_only = prefill_only
        self.block_tokens = block_tokens  # tokens per prefix-cache block (the trace's hash granularity)
        self.cache = PrefixCache()
        self.waiting: deque[EngineSequence] = deque()
        self.running: dict[int, EngineSequence] = {}  # admission order: the last one is preempted first
        self._prefilling: deque[EngineSequence] = deque()  # running sequences whose KV is not complete yet
        self._prefill_alloc = 0  # KV tokens reserved by prefilling sequences
        self._decode_heap: list[tuple[int, int, int, EngineSequence]] = []  # (finish step, uid, epoch, seq)
        self._n_decoding = 0
        self._ctx_base_sum = 0  # decoding context in total = _ctx_base_sum + _n_decoding * vstep
        self.vstep = 0
        self._pending_first: list[EngineSequence] = []  # decoding sequences that await their first token
        self._packed: list[tuple[EngineSequence, int]] = []
        self._aborting: list[EngineSequence] = []  # running sequences to drop at the current segment's end
        self._kind = _IDLE
        self._seg_t = 0.0
        self._dt = 0.0
        self._seg_steps = 0
        self._chunk = 0
        self._next_t = _NEVER
        self.hit_tokens = 0
        self.query_tokens = 0
        self.hit_blocks = 0
        self.query_blocks = 0
        self.preemptions = 0

    # --- what the driver and the metrics see ---------------------------------------------------------

    def next_event_time(self) -> float:
        return self._next_t

    @property
    def kv_used_tokens(self) -> int:
        return self._prefill_alloc + self._ctx_base_sum + self._n_decoding * self.vstep

    @property
    def kv_usage(self) -> float:
        return self.kv_used_tokens / self._capacity

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def in_flight(self) -> int:
        return len(self.waiting) + len(self.running)

    @property
    def segment(self) -> Segment:
        return Segment(first_step=self.vstep, start=self._seg_t, step_s=self._dt, steps=self._seg_steps)

    def fits(self, seq: EngineSequence) -> bool:
        """Whether the sequence's whole context can ever be held here (else it would be preempted forever)."""
        return seq.prompt_tokens + seq.output_tokens <= self._capacity

    # --- driving -----------------------------------------------------------------------------------------

    def admit(self, seq: EngineSequence, now: float) -> bool:
        """Queue ``seq`` at ``now``; returns True when ``next_event_time()`` changed."""
        self.waiting.append(seq)
        kind = self._kind
        if kind == _IDLE:
            self._seg_t = now
            self._plan(now)
            return True
        if kind == _DECODE and len(self.running) < self._max_seqs:
            # Join at the next step boundary instead of after the current stretch of decoding.
            return self._cut_segment(now)
        return False

    def abort(self, seq: EngineSequence, now: float) -> bool:
        """Drop ``seq`` (a client went away) at ``now``; returns True when ``next_event_time()`` changed.

        A waiting sequence leaves at once. A running one leaves at the next step boundary (the end of the
        step in flight), when its KV is freed and its prompt blocks stay cached, as vLLM frees an aborted
        request's blocks after the step.
        """
        if seq.uid not in self.running:
            if seq in self.waiting:
                self.waiting.remove(seq)
            return False
        self._aborting.append(seq)
        return self._kind in (_DECODE, _CHUNK) and self._cut_segment(now)

    def _cut_segment(self, now: float) -> bool:
        """End the current stretch at the first step boundary at or after ``now``, if that is earlier."""
        steps = max(0, math.ceil((now - self._seg_t) / self._dt - 1e-9))
        if steps < self._seg_steps:
            self._seg_steps = steps
            self._next_t = self._seg_t + steps * self._dt
            return True
        return False

    def advance(self, now: float) -> list[EngineSequence]:
        """Run to the planned event (``now`` is ``next_event_time()``); returns the sequences that left."""
        out: list[EngineSequence] = []
        if self._kind == _IDLE:
            return out
        end = self._seg_t + self._seg_steps * self._dt
        if self._seg_steps:
            self._settle(end, out)
        if self._aborting:
            for seq in self._aborting:
                if seq.uid in self.running:  # not finished meanwhile
                    self._stop_running(seq)
            self._aborting.clear()
        self._seg_t = end
        self._plan(end)
        return out

    # --- internals -----------------------------------------------------------------------------------------

    def _settle(self, end: float, out: list[EngineSequence]) -> None:
        steps = self._seg_steps
        if self._pending_first:
            first = self._seg_t + self._dt
            running = self.running
            for seq in self._pending_first:
                if seq.uid in running and seq.first_token_time != seq.first_token_time:  # NaN: not yet
                    seq.first_token_time = first
            self._pending_first.clear()
        self.vstep += steps
        kind = self._kind
        if kind == _CHUNK:
            self._prefilling[0].computed += steps * self._chunk
        elif kind == _PACKED:
            for seq, tokens in self._packed:
                seq.computed += tokens
                if seq.computed >= seq.target:
                    self._prefilling.popleft()  # packed sequences are the head of the FIFO, in order
                    self._prefill_alloc -= seq.target
                    self._prefilled(seq, end, out)
            self._packed.clear()
        heap = self._decode_heap
        vstep = self.vstep
        while heap and heap[0][0] <= vstep:
            _, _, epoch, seq = heapq.heappop(heap)
            if epoch == seq.epoch:
                self._stop_decoding(seq)
                seq.generated = seq.output_tokens
                self._release(seq)
                seq.finish_time = end
                out.append(seq)

    def _prefilled(self, seq: EngineSequence, now: float, out: list[EngineSequence]) -> None:
        if seq.prefill_done_time != seq.prefill_done_time:
            seq.prefill_done_time = now
        if self.prefill_only:
            self._release(seq)
            out.append(seq)
            return
        # The last prefill step samples the next token (the first one, unless this was a recompute).
        seq.generated += 1
        if seq.first_token_time != seq.first_token_time:
            seq.first_token_time = now
        if seq.generated >= seq.output_tokens:
            self._release(seq)
            seq.finish_time = now
            out.append(seq)
            return
        self._start_decoding(seq)

    def _start_decoding(self, seq: EngineSequence) -> None:
        step0 = self.vstep - seq.generated
        seq.step0 = step0
        self._ctx_base_sum += seq.prompt_tokens - step0
        self._n_decoding += 1
        heapq.heappush(self._decode_heap, (step0 + seq.output_tokens, seq.uid, seq.epoch, seq))

    def _stop_decoding(self, seq: EngineSequence) -> None:
        self._ctx_base_sum -= seq.prompt_tokens - seq.step0
        self._n_decoding -= 1

    def _release(self, seq: EngineSequence) -> None:
        del self.running[seq.uid]
        if seq.block_hashes:
            self.cache.unpin(seq.block_hashes)

    def _admit_waiting(self) -> None:
        waiting = self.waiting
        running = self.running
        capacity = self._capacity
        max_seqs = self._max_seqs
        cache = self.cache
        used = self._prefill_alloc + self._ctx_base_sum + self._n_decoding * self.vstep
        while waiting and len(running) < max_seqs:
            seq = waiting[0]
            target = seq.target
            # Room for its context and for the next decode step of every decoding sequence.
            needed = target + self._n_decoding + (seq.computed >= target)
            if used + needed > capacity:
                break
            waiting.popleft()
            used += target
            running[seq.uid] = seq
            hashes = seq.block_hashes
            if seq.computed < target:
                cached = 0
                if hashes:
                    blocks = cache.match(hashes)
                    cached = blocks * self.block_tokens
                    if cached > target - 1:
                        cached = target - 1
                    self.hit_blocks += blocks
                    self.query_blocks += len(hashes)
                    cache.pin(hashes)
                self.hit_tokens += cached
                self.query_tokens += seq.prompt_tokens
                seq.cached_tokens = cached
                seq.computed = cached
                self._prefill_alloc += seq.target
                self._prefilling.append(seq)
            else:
                if hashes:
                    cache.pin(hashes)
                self._start_decoding(seq)
                if seq.first_token_time != seq.first_token_time:
                    self._pending_first.append(seq)

    def _stop_running(self, seq: EngineSequence) -> None:
        """Take a running sequence out of the batch, keeping the tokens it generated, its KV freed."""
        if seq.computed < seq.target:
            self._prefilling.remove(seq)
            self._prefill_alloc -= seq.target
        else:
            seq.generated = self.vstep - seq.step0
            self._stop_decoding(seq)
        self._release(seq)
        seq.epoch += 1

    def _preempt_newest(self) -> None:
        seq = self.running[next(reversed(self.running))]
        self._stop_running(seq)
        seq.preemptions += 1
        self.preemptions += 1
        seq.target = seq.prompt_tokens + seq.generated
        seq.computed = 0
        self.waiting.appendleft(seq)

    def _plan(self, now: float) -> None:
        capacity = self._capacity
        # KV for the next decode step must fit: drop the newest sequences until it does.
        batch = self._n_decoding
        if self._prefill_alloc + self._ctx_base_sum + batch * self.vstep + batch > capacity:
            while self.running and self.kv_used_tokens + self._n_decoding > capacity:
                self._preempt_newest()
        if self.waiting:
            self._admit_waiting()
        batch = self._n_decoding
        context = self._ctx_base_sum + batch * self.vstep
        used = self._prefill_alloc + context
        room = (capacity - used) // self.block_tokens
        cache = self.cache
        if cache.free_blocks > room:
            cache.evict_to(room)
        dt = self._base_s + self._per_sequence_s * batch + self._per_context_s * context
        if self._prefilling:
            dt += self._prefill_step_s
            avail = max(1, self._budget - batch)
            head = self._prefilling[0]
            remaining = head.target - head.computed
            if remaining > avail:
                steps = (remaining - 1) // avail  # leave the last piece to a packed step
                done = head.computed
                pairs = (done + steps * avail) ** 2 - done * done
                dt += self._per_token_s * avail + self._per_pair_s * pairs / steps
                self._kind = _CHUNK
                self._chunk = avail
            else:
                total = 0
                pairs = 0
                packed = self._packed
                for seq in self._prefilling:
                    take = min(seq.target - seq.computed, avail - total)
                    done = seq.computed
                    pairs += (done + take) ** 2 - done * done
                    packed.append((seq, take))
                    total += take
                    if total >= avail:
                        break
                dt += self._per_token_s * total + self._per_pair_s * pairs
                self._kind = _PACKED
                steps = 1
        elif batch:
            self._kind = _DECODE
            steps = 1 << 62
        else:
            self._kind = _IDLE
            self._seg_steps = 0
            self._next_t = _NEVER
            return
        if batch:
            heap = self._decode_heap
            while heap[0][2] != heap[0][3].epoch:  # drop entries of preempted sequences
                heapq.heappop(heap)
            steps = min(steps, heap[0][0] - self.vstep, (capacity - used) // batch)
        self._dt = dt
        self._seg_steps = steps
        self._seg_t = now
        self._next_t = now + steps * dt

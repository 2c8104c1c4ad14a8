"""The P/D decision: prefill this request on a prefill endpoint (remote) or on its decode endpoint (local).

llm-d's ``prefix-based-pd-decider`` disaggregates whenever the uncached prompt exceeds a fixed token count;
being queue-blind, it keeps sending work to a saturated prefill pool and can inflate TTFT many times over
(llm-d.md 2.5). This decider adds the queue, and counts what a local prefill costs the decode endpoint: its
prefill time is a stall of every sequence decoding there (a decode step that carries a prefill chunk takes
that much longer for all of them), so the stall is charged once per request in flight on the decode endpoint
(at least once). A 200-token local prefill (6 ms on an H100 for Llama-3.1-8B) saves the request its KV
transfer, a few ms of TTFT; on a decode endpoint running 90 sequences it costs them 90 x 6 ms of latency.

1. **short**: the uncached prompt, times the sequences it would stall, is below
   ``min_remote_prefill_tokens``: moving its KV would cost about as much as computing it, and computing it
   delays next to nobody.
2. **prefill-backlogged**: the prefill pool's backlog, in seconds of queued prefill work, is set against
   the decode endpoint's headroom. Remote prefill reaches the first token after ``remote_s`` (the uncached
   tokens already queued on the chosen prefill endpoint plus this prompt's, at ``prefill_tokens_per_s``);
   local prefill after ``local_s`` (the decode endpoint's own queued prefill work plus this prompt's).
   Local wins when the time it saves exceeds the stall it inflicts on the decode endpoint's sequences
   (this prompt's prefill time there, once per sequence), *and* the decode endpoint has headroom for it:
   ``local_s`` fits in ``local_prefill_budget_s x (1 - kv_usage)``, the stall an idle decode endpoint may
   take, shrinking as its KV fills. An idle or lightly queued prefill pool therefore keeps the work, and a
   backlogged one sheds it only to decode endpoints that can absorb it.
3. otherwise **remote**.
"""

from __future__ import annotations

from autoscaler.routing.settings import PrefillDecider

SHORT = "short"
BACKLOGGED = "prefill-backlogged"
REMOTE = "remote"
NO_PREFILL_ENDPOINT = "no-prefill-endpoint"


def decide(
    config: PrefillDecider,
    *,
    uncached_on_decode: float,
    uncached_on_prefill: float,
    prefill_backlog_tokens: float,
    decode_backlog_tokens: float,
    decode_kv_usage: float,
    decode_sequences: int,
) -> tuple[bool, str]:
    """``(remote, reason)`` for one request, given the chosen decode and prefill endpoints' state.

    ``decode_sequences``: the requests in flight on the decode endpoint, which a local prefill stalls.
    """
    stalled = max(1, decode_sequences)
    if uncached_on_decode * stalled < config.min_remote_prefill_tokens:
        return False, SHORT
    rate = config.prefill_tokens_per_s
    local_s = (decode_backlog_tokens + uncached_on_decode) / rate
    remote_s = (prefill_backlog_tokens + uncached_on_prefill) / rate
    headroom_s = config.local_prefill_budget_s * (1.0 - min(1.0, max(0.0, decode_kv_usage)))
    stall_s = uncached_on_decode / rate * stalled
    if remote_s - local_s > stall_s and local_s <= headroom_s:
        return False, BACKLOGGED
    return True, REMOTE

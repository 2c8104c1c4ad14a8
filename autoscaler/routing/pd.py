"""The P/D decision: prefill this request on a prefill endpoint (remote) or on its decode endpoint (local).

llm-d's ``prefix-based-pd-decider`` disaggregates whenever the uncached prompt exceeds a fixed token count;
being queue-blind, it keeps sending work to a saturated prefill pool and can inflate TTFT many times over
(llm-d.md 2.5). This decider adds the queue:

1. **short**: an uncached prompt below ``min_remote_prefill_tokens`` prefills locally: moving its KV would
   cost about as much as computing it.
2. **prefill-backlogged**: the prefill pool's backlog, in seconds of queued prefill work, is set against
   the decode endpoint's headroom. Remote prefill reaches the first token after ``remote_s`` (the uncached
   tokens already queued on the chosen prefill endpoint plus this prompt's, at ``prefill_tokens_per_s``);
   local prefill after ``local_s`` (the decode endpoint's own queued prefill work plus this prompt's).
   Local wins when the time it saves exceeds the stall it inflicts on the decode endpoint's running
   sequences (this prompt's prefill time there), *and* the decode endpoint has headroom for it: ``local_s``
   fits in ``local_prefill_budget_s x (1 - kv_usage)``, the stall an idle decode endpoint may take,
   shrinking as its KV fills. An idle or lightly queued prefill pool therefore keeps the work, and a
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
) -> tuple[bool, str]:
    """``(remote, reason)`` for one request, given the chosen decode and prefill endpoints' state."""
    if uncached_on_decode < config.min_remote_prefill_tokens:
        return False, SHORT
    rate = config.prefill_tokens_per_s
    local_s = (decode_backlog_tokens + uncached_on_decode) / rate
    remote_s = (prefill_backlog_tokens + uncached_on_prefill) / rate
    headroom_s = config.local_prefill_budget_s * (1.0 - min(1.0, max(0.0, decode_kv_usage)))
    stall_s = uncached_on_decode / rate
    if remote_s - local_s > stall_s and local_s <= headroom_s:
        return False, BACKLOGGED
    return True, REMOTE

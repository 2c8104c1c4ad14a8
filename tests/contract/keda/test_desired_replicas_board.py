"""The board the controller publishes to: latest entry per key, removal, and waking asyncio readers."""

from __future__ import annotations

import asyncio
import threading

from autoscaler.adapters.publishing import BoardKey, DesiredReplicasBoard, Published
from autoscaler.core.decision import Decision, PhaseDecision
from autoscaler.core.phases import Phase


def _board() -> DesiredReplicasBoard:
    return DesiredReplicasBoard(wall_clock=lambda: 1_700_000_000.0)


def test_latest_publish_wins_and_snapshot_is_a_sorted_copy() -> None:
    board = _board()
    board.publish(namespace="ns", autoscaler="a", phase=Phase.DECODE, desired=3, current=2, reason="ScaleUp")
    board.publish(namespace="ns", autoscaler="a", phase=Phase.DECODE, desired=4, current=3, reason="ScaleUp")
    board.publish(namespace="ns", autoscaler="a", phase=Phase.PREFILL, desired=1, current=1, reason="Hold")
    assert board.get(namespace="ns", autoscaler="a", phase=Phase.DECODE) == Published(
        desired=4, current=3, reason="ScaleUp", message="", time=1_700_000_000.0
    )
    snapshot = board.snapshot()
    assert list(snapshot) == [BoardKey("ns", "a", Phase.DECODE), BoardKey("ns", "a", Phase.PREFILL)]
    snapshot.clear()
    assert len(board.snapshot()) == 2


def test_a_decision_publishes_every_phase_and_removal_forgets_the_autoscaler() -> None:
    board = _board()
    decision = Decision(
        pool="p",
        time=12.0,
        phases={
            Phase.PREFILL: PhaseDecision(replicas=2, previous=1, reason="ScaleUp", message="queue grows"),
            Phase.DECODE: PhaseDecision(replicas=5, previous=5, reason="Hold", message="within band"),
        },
    )
    board.publish_decision(namespace="ns", autoscaler="a", decision=decision)
    board.publish(namespace="ns", autoscaler="b", phase=Phase.AGGREGATED, desired=1, current=1, reason="Hold")
    entry = board.get(namespace="ns", autoscaler="a", phase=Phase.PREFILL)
    assert entry is not None
    assert (entry.desired, entry.current, entry.message) == (2, 1, "queue grows")
    version = board.version
    board.remove(namespace="ns", autoscaler="a")
    assert [k.autoscaler for k in board.snapshot()] == ["b"]
    assert board.version == version + 1
    board.remove(namespace="ns", autoscaler="a")
    assert board.version == version + 1


async def test_a_publish_from_another_thread_wakes_an_asyncio_reader() -> None:
    board = _board()
    since = board.version
    reader = asyncio.create_task(board.changed(since))
    await asyncio.sleep(0)
    writer = threading.Thread(
        target=lambda: board.publish(
            namespace="ns", autoscaler="a", phase=Phase.DECODE, desired=1, current=0, reason="ScaleUp"
        )
    )
    writer.start()
    assert await asyncio.wait_for(reader, timeout=5) == since + 1
    writer.join()
    # Already past: no wait at all.
    assert await board.changed(since) == since + 1


async def test_a_cancelled_reader_leaves_no_waiter_behind() -> None:
    board = _board()
    reader = asyncio.create_task(board.changed(board.version))
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert board._waiters == []

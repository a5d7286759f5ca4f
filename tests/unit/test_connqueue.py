"""What the leader queues for a connection (sidecar/core/connqueue.py): a stuck
receiver is cut off, but a relay flood cuts its sender, not its receiver."""

from __future__ import annotations

from sidecar.core.connqueue import ConnQueue, Verdict


def test_a_receiver_that_takes_nothing_is_cut_once_its_queue_is_full() -> None:
    box = ConnQueue(limit=100, relay_limit=50)
    assert box.offer(60) is Verdict.QUEUE
    assert box.offer(40) is Verdict.QUEUE
    assert box.offer(1) is Verdict.CUT_RECEIVER
    box.sent(60)
    assert box.offer(50) is Verdict.QUEUE


def test_a_relay_flood_cuts_its_sender_and_leaves_the_others_room() -> None:
    box = ConnQueue(limit=100, relay_limit=50)
    for _ in range(5):
        assert box.offer(10, relay_from="flooder") is Verdict.QUEUE
    assert box.offer(10, relay_from="flooder") is Verdict.CUT_SENDER
    assert box.queued == 50 and box.relayed_from("flooder") == 50  # nothing counted for it
    assert box.offer(30, relay_from="honest") is Verdict.QUEUE
    assert box.offer(20) is Verdict.QUEUE  # the leader's own frames still go
    box.sent(10, relay_from="flooder")
    assert box.relayed_from("flooder") == 40
    assert box.offer(10, relay_from="flooder") is Verdict.QUEUE  # within its share again


def test_many_relay_senders_together_cut_the_one_that_overflows_not_the_receiver() -> None:
    box = ConnQueue(limit=100, relay_limit=50)
    for sender in ("a", "b", "c"):
        assert box.offer(30, relay_from=sender) is Verdict.QUEUE
    assert box.offer(20, relay_from="d") is Verdict.CUT_SENDER  # 110 > 100: d goes
    assert box.offer(10) is Verdict.QUEUE  # the receiver stays, its own frames go

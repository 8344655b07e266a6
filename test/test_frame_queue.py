"""Keep-latest hand-over: no frame is taken twice, the newest wins, drops are counted, close wakes."""

import threading
import time

from scene3d_ros.frame_queue import LatestFrameQueue


def test_newest_frame_wins_and_drops_are_counted():
    queue = LatestFrameQueue()
    assert queue.put(1) is False
    assert queue.put(2) is True and queue.put(3) is True
    assert queue.get(timeout=0) == 3
    assert queue.get(timeout=0.01) is None  # never the same frame twice
    stats = queue.stats
    assert (stats.offered, stats.taken, stats.dropped) == (3, 1, 2)


def test_slow_consumer_sees_each_frame_at_most_once_and_in_order():
    queue = LatestFrameQueue()
    seen = []

    def consumer():
        while (item := queue.get(timeout=2.0)) is not None:
            seen.append(item)
            time.sleep(0.002)  # slower than the producer

    thread = threading.Thread(target=consumer)
    thread.start()
    for i in range(2000):
        queue.put(i)
    time.sleep(0.05)
    queue.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(seen) == len(set(seen)) and seen == sorted(seen)
    assert seen[-1] == 1999  # the last frame is not lost
    stats = queue.stats
    assert stats.taken == len(seen) and stats.dropped == 2000 - len(seen) and stats.dropped > 0


def test_close_wakes_a_waiting_consumer():
    queue = LatestFrameQueue()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("item", queue.get(timeout=30)))
    thread.start()
    time.sleep(0.05)
    queue.close()
    thread.join(2)
    assert not thread.is_alive() and result["item"] is None

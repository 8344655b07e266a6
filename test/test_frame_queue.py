"""Keep-latest hand-over: no frame is taken twice, the newest wins, drops are counted, close wakes;
frames carry their arrival numbers; the publishing order of several consumers (PublishOrder)."""

import random
import threading
import time

from scene3d_ros.frame_queue import LatestFrameQueue, PublishOrder


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


def test_frames_carry_their_arrival_number():
    queue = LatestFrameQueue()
    queue.put("a")
    assert queue.get_numbered(timeout=0) == (1, "a")
    queue.put("b")
    queue.put("c")  # replaces b
    assert queue.get_numbered(timeout=0) == (3, "c")
    assert queue.get_numbered(timeout=0.01) is None


def _admit(order: PublishOrder, sequence: int, stamp: int) -> bool:
    with order.publishing(sequence, stamp) as admitted:
        return admitted


def test_a_result_overtaken_by_a_newer_frame_is_late():
    """Frames 1 and 2 (stamps 100, 200) on two workers; frame 2 finishes first: frame 1's result
    would take the stream back in time, so it is refused and counted. Frame 3 goes on."""
    order = PublishOrder()
    assert _admit(order, 2, 200)
    assert not _admit(order, 1, 100)
    assert order.late == 1
    assert _admit(order, 3, 300)
    assert not _admit(order, 1, 100) and order.late == 2  # still late against frame 3


def test_in_order_results_equal_stamps_and_a_camera_clock_going_back_are_never_late():
    order = PublishOrder()
    assert all(_admit(order, k, 100 * k) for k in range(1, 6))  # one worker: in arrival order
    assert _admit(order, 6, 500)  # the same stamp again (a camera that does not stamp)
    assert _admit(order, 4, 500)  # an earlier frame finishing later, with an equal stamp
    assert _admit(order, 7, 10)  # the camera's clock went back (a recording played again): published
    assert _admit(order, 8, 20)
    assert order.late == 0


def test_one_frames_messages_are_published_together():
    """The order's lock is held for the whole block: a second worker admitted meanwhile waits."""
    order, inside, release, second_entered = PublishOrder(), threading.Event(), threading.Event(), threading.Event()

    def first():
        with order.publishing(1, 100):
            inside.set()
            release.wait(10)

    def second():
        with order.publishing(2, 200):
            second_entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    assert not second_entered.wait(0.2)  # blocked while the first frame publishes
    release.set()
    for thread in threads:
        thread.join(10)
    assert second_entered.is_set()


def test_several_consumers_publish_strictly_increasing_stamps():
    """Three consumers with random work times on one queue, a producer with increasing stamps:
    the published stamps strictly increase, no frame is published twice, every taken frame is
    either published or counted late, and frames overtaking each other did happen."""
    queue, order, published, lock = LatestFrameQueue(), PublishOrder(), [], threading.Lock()

    def consumer(seed: int):
        rng = random.Random(seed)
        while (taken := queue.get_numbered(timeout=2.0)) is not None:
            sequence, stamp = taken
            time.sleep(rng.choice([0.0, 0.0005, 0.004]))  # frames of unequal cost
            with order.publishing(sequence, stamp) as admitted:
                if admitted:
                    with lock:
                        published.append(stamp)

    threads = [threading.Thread(target=consumer, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for k in range(3000):
        queue.put(1_000 + k)
        if k % 10 == 0:
            time.sleep(0.0005)
    time.sleep(0.05)
    queue.close()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert published == sorted(set(published)), "published out of order or twice"
    assert published[-1] == 1_000 + 2999  # the newest frame cannot be overtaken
    assert queue.stats.taken == len(published) + order.late
    assert order.late > 0, "no consumer overtook another: the ordering rule was not exercised"

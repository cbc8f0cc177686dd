"""The micro-batcher on its own: grouping, routing, the queue bound, failures, shutdown.

The decode function here is a plain function over strings (upper-casing, with a gate or a
failure where a test needs one): the batcher is the code under test, not the model.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Hashable

import pytest

from mt_cli.app.serve.microbatch import Closed, MicroBatcher, QueueFull


class Recorder:
    """Upper-cases lines and remembers every call; can block on a gate or fail on 'boom'."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str] | None, Hashable]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, lines: list[str], prefixes: list[str] | None, key: Hashable) -> list[str]:
        self.gate.wait(10)
        self.calls.append((list(lines), prefixes, key))
        if "boom" in lines:
            raise RuntimeError("decoder failed")
        return [f"{key}:{(p or '') if prefixes else ''}{line.upper()}"
                for line, p in zip(lines, prefixes or [""] * len(lines))]


def test_concurrent_requests_share_a_batch_and_get_their_own_results() -> None:
    decode = Recorder()
    batcher = MicroBatcher(decode, max_batch=64, max_wait=0.2)
    futures = [batcher.submit([f"s{i}", f"t{i}"]) for i in range(10)]
    assert [f.result(5) for f in futures] == [[f"None:S{i}", f"None:T{i}"] for i in range(10)]
    assert len(decode.calls) == 1 and len(decode.calls[0][0]) == 20
    batcher.close()


def test_batch_is_cut_at_max_batch_lines_in_arrival_order() -> None:
    decode = Recorder()
    decode.gate.clear()
    batcher = MicroBatcher(decode, max_batch=4, max_wait=0.05)
    futures = [batcher.submit([f"s{i}"]) for i in range(10)]
    decode.gate.set()
    assert [f.result(5) for f in futures] == [[f"None:S{i}"] for i in range(10)]
    assert max(len(lines) for lines, _, _ in decode.calls) == 4
    assert [line for lines, _, _ in decode.calls for line in lines] == [f"s{i}" for i in range(10)]
    batcher.close()


def test_different_options_are_decoded_separately() -> None:
    decode = Recorder()
    batcher = MicroBatcher(decode, max_batch=32, max_wait=0.1)
    a, b, c = batcher.submit(["x"], key="beam4"), batcher.submit(["y"], key="beam1"), batcher.submit(["z"], key="beam4")
    assert (a.result(5), b.result(5), c.result(5)) == (["beam4:X"], ["beam1:Y"], ["beam4:Z"])
    assert sorted((tuple(lines), key) for lines, _, key in decode.calls) == [(("x", "z"), "beam4"), (("y",), "beam1")]
    batcher.close()


def test_prefixes_follow_their_lines() -> None:
    decode = Recorder()
    batcher = MicroBatcher(decode, max_batch=32, max_wait=0.1)
    plain, prefixed = batcher.submit(["a"]), batcher.submit(["b", "c"], prefixes=["p ", ""])
    assert plain.result(5) == ["None:A"] and prefixed.result(5) == ["None:p B", "None:C"]
    batcher.close()


def test_full_queue_refuses_and_frees_up_after_decoding() -> None:
    decode = Recorder()
    decode.gate.clear()
    batcher = MicroBatcher(decode, max_batch=2, max_wait=0.0, max_queued=3)
    first = batcher.submit(["a", "b"])
    with pytest.raises(QueueFull):
        batcher.submit(["c", "d"])  # 2 in flight + 2 > 3
    second = batcher.submit(["c"])
    decode.gate.set()
    assert first.result(5) == ["None:A", "None:B"] and second.result(5) == ["None:C"]
    deadline = time.monotonic() + 5
    while batcher.pending_lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.submit(["e", "f", "g"]).result(5) == ["None:E", "None:F", "None:G"]
    batcher.close()


def test_a_failing_batch_is_retried_one_by_one_so_only_the_bad_request_fails() -> None:
    decode = Recorder()
    decode.gate.clear()  # both requests queue up before the worker decodes: one batch
    batcher = MicroBatcher(decode, max_batch=8, max_wait=0.5)
    bad, good, ok_other_key = batcher.submit(["boom"]), batcher.submit(["fine"]), batcher.submit(["x"], key="k")
    decode.gate.set()
    with pytest.raises(RuntimeError, match="decoder failed"):
        bad.result(5)
    assert good.result(5) == ["None:FINE"] and ok_other_key.result(5) == ["k:X"]
    assert decode.calls[0][0] == ["boom", "fine"]  # they did share the batch that failed
    assert batcher.submit(["again"]).result(5) == ["None:AGAIN"]
    assert batcher.stats.failed_batches == 1 and batcher.stats.failed_requests == 1 and batcher.pending_lines == 0
    batcher.close()


def test_a_dropped_request_is_never_decoded_and_frees_the_queue() -> None:
    decode = Recorder()
    decode.gate.clear()
    batcher = MicroBatcher(decode, max_batch=1, max_wait=0.0, max_queued=2)
    held = batcher.submit(["held"])
    deadline = time.monotonic() + 5
    while not held.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    gone = batcher.submit(["gone"])
    assert batcher.drop(gone) and gone.cancelled() and batcher.pending_lines == 1
    assert not batcher.drop(held)  # being decoded: too late to drop
    decode.gate.set()
    assert held.result(5) == ["None:HELD"]
    assert batcher.submit(["next"]).result(5) == ["None:NEXT"]
    assert [lines for lines, _, _ in decode.calls] == [["held"], ["next"]]
    assert batcher.stats.dropped_requests == 1
    batcher.close()


class Fatal(BaseException):
    """What no `except Exception` catches: the worker thread itself ends."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_fails_its_requests_and_says_so() -> None:
    def decode(lines: list[str], prefixes: list[str] | None, key: Hashable) -> list[str]:
        raise Fatal("worker killed")

    batcher = MicroBatcher(decode, max_batch=8, max_wait=0.0)
    with pytest.raises(RuntimeError, match="worker stopped"):
        batcher.submit(["a"]).result(5)  # not a future that never completes
    deadline = time.monotonic() + 5
    while batcher.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not batcher.alive
    with pytest.raises(Closed, match="worker stopped"):
        batcher.submit(["b"])


@pytest.mark.parametrize("wait", [math.inf, math.nan, -1.0])
def test_a_non_finite_wait_is_refused(wait: float) -> None:
    with pytest.raises(ValueError, match="max_wait"):
        MicroBatcher(Recorder(), max_wait=wait)


def test_empty_request_needs_no_decoding_and_close_drains_the_queue() -> None:
    decode = Recorder()
    batcher = MicroBatcher(decode, max_batch=8, max_wait=5.0)
    assert batcher.submit([]).result(1) == [] and not decode.calls
    waiting = batcher.submit(["last"])  # would wait 5 s for company; close() decodes it now
    started = time.monotonic()
    batcher.close(timeout=5)
    assert waiting.result(0) == ["None:LAST"] and time.monotonic() - started < 2
    with pytest.raises(Closed):
        batcher.submit(["late"])

"""Micro-batching: requests queued one by one, decoded together, each result routed back.

Why: a server receives one sentence per request, and decoding them one at a time throws
away the batching that makes decoding fast. Requests wait here; one worker thread takes the
oldest request plus the queued requests with the same decode options (the same `key`), up
to `max_batch` lines or until `max_wait` seconds after the oldest arrived, decodes them in
one call and hands each request its own slice, in order. The queue is bounded in lines
(lines being decoded included), so a flood of requests is refused, not buffered. A group
whose decoding fails is decoded again one job at a time, so that one bad request fails
alone instead of taking the requests batched with it down too; a job whose client left is
dropped from the queue before it costs any decoding.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchStats", "Closed", "MicroBatcher", "QueueFull"]

# decode(lines, prefixes or None, key) -> one result per line, in order
DecodeFn = Callable[[list[str], "list[str] | None", Hashable], list[Any]]


class QueueFull(Exception):
    """The queue holds as many lines as allowed; the caller should retry later."""


class Closed(Exception):
    """The batcher is shutting down and takes no new work."""


@dataclass
class BatchStats:
    """What the worker did so far (for /info, and for tests that check batching happened)."""

    requests: int = 0
    lines: int = 0
    batches: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    failed_requests: int = 0
    dropped_requests: int = 0


@dataclass
class _Job:
    lines: list[str]
    prefixes: list[str] | None
    key: Hashable
    future: Future
    arrived: float


class MicroBatcher:
    """One worker thread decoding queued requests in groups of equal decode options."""

    def __init__(self, decode: DecodeFn, max_batch: int = 32, max_wait: float = 0.01,
                 max_queued: int = 2048) -> None:
        if max_batch < 1 or not 0 <= max_wait < math.inf or max_queued < 1:
            raise ValueError("max_batch and max_queued must be >= 1, max_wait finite and >= 0")
        self.max_batch, self.max_wait, self.max_queued = max_batch, max_wait, max_queued
        self.stats = BatchStats()
        self._decode = decode
        self._jobs: deque[_Job] = deque()
        self._pending = 0  # lines queued or being decoded: the memory bound
        self._cond = threading.Condition()
        self._closed = False
        self._died: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mt-cli-batcher", daemon=True)
        self._thread.start()

    @property
    def pending_lines(self) -> int:
        return self._pending

    @property
    def alive(self) -> bool:
        """Whether the worker still runs (it ends on close(), or on a failure of its own)."""
        return self._thread.is_alive() and self._died is None

    def submit(self, lines: list[str], prefixes: list[str] | None = None, key: Hashable = None) -> Future:
        """A future of one result per line; raises QueueFull or Closed instead of queueing."""
        future: Future = Future()
        if not lines:
            future.set_result([])
            return future
        with self._cond:
            if self._closed:
                raise Closed("shutting down" if self._died is None else "the batcher's worker stopped")
            if self._pending and self._pending + len(lines) > self.max_queued:
                raise QueueFull(f"{self._pending} lines queued (limit {self.max_queued})")
            self._pending += len(lines)
            self._jobs.append(_Job(lines, prefixes, key, future, time.monotonic()))
            self._cond.notify()
        return future

    def drop(self, future: Future) -> bool:
        """Take a job out of the queue before it is decoded (its client went away); False if
        it is being decoded or done already."""
        with self._cond:
            for job in self._jobs:
                if job.future is future:
                    self._jobs.remove(job)
                    self._pending -= len(job.lines)
                    self.stats.dropped_requests += 1
                    future.cancel()
                    return True
        return False

    def close(self, timeout: float | None = None) -> None:
        """Take no new work, decode what is queued, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        """The worker; should it fail itself, every queued request fails and no more are taken."""
        group: list[_Job] | None = []
        try:
            while (group := self._next_group()) is not None:
                self._decode_group(group)
        except BaseException as exc:  # re-raised: the thread ends, but its requests must not hang
            with self._cond:
                self._died, self._closed = exc, True
                jobs, self._jobs = [*(group or []), *self._jobs], deque()
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(RuntimeError(f"the batcher's worker stopped: {type(exc).__name__}"))
            raise

    def _queued_lines(self, key: Hashable) -> int:
        return sum(len(job.lines) for job in self._jobs if job.key == key)

    def _next_group(self) -> list[_Job] | None:
        """Wait for work, then for the oldest job's group to fill (or its wait to end)."""
        with self._cond:
            while not self._jobs:
                if self._closed:
                    return None
                self._cond.wait()
            oldest = self._jobs[0]
            deadline = oldest.arrived + self.max_wait
            while not self._closed and self._queued_lines(oldest.key) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take(oldest.key)

    def _take(self, key: Hashable) -> list[_Job]:
        """Jobs with `key`, oldest first, up to max_batch lines (the first always); the rest stay."""
        group: list[_Job] = []
        kept: deque[_Job] = deque()
        total = 0
        for job in self._jobs:
            fits = not group or total + len(job.lines) <= self.max_batch
            if job.key == key and fits and total < self.max_batch:
                group.append(job)
                total += len(job.lines)
            else:
                kept.append(job)
        self._jobs = kept
        return group

    def _decode_group(self, group: list[_Job]) -> None:
        """One decode call for the group's live jobs; if it fails, one call per job, so that
        only the jobs that fail on their own fail."""
        live = [job for job in group if job.future.set_running_or_notify_cancel()]
        lines = [line for job in live for line in job.lines]
        try:
            results = self._decode_jobs(live)
        except Exception as exc:  # noqa: BLE001 (the server answers 500 and keeps serving)
            failed = self._decode_one_by_one(live) if len(live) > 1 else self._fail(live, exc)
            self._account(group, len(lines), failed=failed)
            return
        start = 0
        for job in live:
            job.future.set_result(results[start:start + len(job.lines)])
            start += len(job.lines)
        self._account(group, len(lines), failed=0)

    def _decode_jobs(self, jobs: list[_Job]) -> list[Any]:
        lines = [line for job in jobs for line in job.lines]
        prefixes = None
        if any(job.prefixes for job in jobs):
            prefixes = [p for job in jobs for p in (job.prefixes or [""] * len(job.lines))]
        results = self._decode(lines, prefixes, jobs[0].key) if lines else []
        if len(results) != len(lines):
            raise RuntimeError(f"decoder returned {len(results)} results for {len(lines)} lines")
        return results

    def _decode_one_by_one(self, jobs: list[_Job]) -> int:
        """The jobs of a failed group, each decoded alone; how many failed."""
        failed = 0
        for job in jobs:
            try:
                job.future.set_result(self._decode_jobs([job]))
            except Exception as exc:  # noqa: BLE001 (this job's failure is its own answer)
                failed += self._fail([job], exc)
        return failed

    @staticmethod
    def _fail(jobs: list[_Job], exc: Exception) -> int:
        for job in jobs:
            job.future.set_exception(exc)
        return len(jobs)

    def _account(self, group: list[_Job], decoded: int, failed: int) -> None:
        with self._cond:
            self._pending -= sum(len(job.lines) for job in group)
            stats = self.stats
            stats.requests += len(group)
            stats.lines += decoded
            stats.batches += 1
            stats.largest_batch = max(stats.largest_batch, decoded)
            stats.failed_batches += failed > 0
            stats.failed_requests += failed

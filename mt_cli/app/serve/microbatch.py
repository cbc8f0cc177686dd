"""Micro-batching: requests queued one by one, decoded together, each result routed back.

Why: a server receives one sentence per request, and decoding them one at a time throws
away the batching that makes decoding fast. Requests wait here; one worker thread takes the
oldest request plus the queued requests with the same decode options (the same `key`), up
to `max_batch` lines or until `max_wait` seconds after the oldest arrived, decodes them in
one call and hands each request its own slice, in order. The queue is bounded in lines
(lines being decoded included), so a flood of requests is refused, not buffered.
"""

from __future__ import annotations

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
        if max_batch < 1 or max_wait < 0 or max_queued < 1:
            raise ValueError("max_batch and max_queued must be >= 1, max_wait >= 0")
        self.max_batch, self.max_wait, self.max_queued = max_batch, max_wait, max_queued
        self.stats = BatchStats()
        self._decode = decode
        self._jobs: deque[_Job] = deque()
        self._pending = 0  # lines queued or being decoded: the memory bound
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mt-cli-batcher", daemon=True)
        self._thread.start()

    @property
    def pending_lines(self) -> int:
        return self._pending

    def submit(self, lines: list[str], prefixes: list[str] | None = None, key: Hashable = None) -> Future:
        """A future of one result per line; raises QueueFull or Closed instead of queueing."""
        future: Future = Future()
        if not lines:
            future.set_result([])
            return future
        with self._cond:
            if self._closed:
                raise Closed("shutting down")
            if self._pending and self._pending + len(lines) > self.max_queued:
                raise QueueFull(f"{self._pending} lines queued (limit {self.max_queued})")
            self._pending += len(lines)
            self._jobs.append(_Job(lines, prefixes, key, future, time.monotonic()))
            self._cond.notify()
        return future

    def close(self, timeout: float | None = None) -> None:
        """Take no new work, decode what is queued, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while (group := self._next_group()) is not None:
            self._decode_group(group)

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
        """One decode call for the group's live jobs; a failure fails only this group."""
        live = [job for job in group if job.future.set_running_or_notify_cancel()]
        lines = [line for job in live for line in job.lines]
        prefixes = None
        if any(job.prefixes for job in live):
            prefixes = [p for job in live for p in (job.prefixes or [""] * len(job.lines))]
        try:
            results = self._decode(lines, prefixes, group[0].key) if lines else []
            if len(results) != len(lines):
                raise RuntimeError(f"decoder returned {len(results)} results for {len(lines)} lines")
        except Exception as exc:  # noqa: BLE001 (the server answers 500 and keeps serving)
            for job in live:
                job.future.set_exception(exc)
            self._account(group, len(lines), failed=True)
            return
        start = 0
        for job in live:
            job.future.set_result(results[start:start + len(job.lines)])
            start += len(job.lines)
        self._account(group, len(lines), failed=False)

    def _account(self, group: list[_Job], decoded: int, failed: bool) -> None:
        with self._cond:
            self._pending -= sum(len(job.lines) for job in group)
            stats = self.stats
            stats.requests += len(group)
            stats.lines += decoded
            stats.batches += 1
            stats.largest_batch = max(stats.largest_batch, decoded)
            stats.failed_batches += failed

"""One pass over a corpus: chunks of pairs judged in worker processes (a bounded number in
flight, so memory stays flat), their verdicts taken back in input order, duplicates decided
here against every earlier pair, the kept pairs handed to a sink.

A small corpus is judged in this process: starting workers would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mt_cli.core.clean_rules import ChunkVerdict, Judge, final_codes
from mt_cli.core.clean_settings import CleanConfig
from mt_cli.core.errors import DataError
from mt_cli.core.hashset import HashSet

from .summary import Summary

CHUNK_PAIRS = 2000  # pairs per task: large enough to amortise the hand-over, small enough to keep every core busy
IN_FLIGHT_PER_WORKER = 3
Chunk = tuple[list[bytes], list[bytes], list[bool]]
Sink = Callable[[list[bytes], list[bytes]], None]

_judge: dict[str, Judge] = {}


@dataclass(frozen=True)
class JudgeSpec:
    """What a worker needs to build its Judge (sent once, at its start)."""

    settings: CleanConfig
    langs: tuple[str, str] | None
    against: tuple[np.ndarray, ...]

    def build(self) -> Judge:
        return Judge(self.settings, self.langs, self.against)


def _start_worker(spec: JudgeSpec) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the pool
    _judge["judge"] = spec.build()


def _judge_chunk(chunk: Chunk) -> ChunkVerdict:
    return _judge["judge"].judge(*chunk)


def _context() -> Any:
    """Workers that start clean (not forked from a process with threads), where there is a choice."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _verdicts_inline(spec: JudgeSpec, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, ChunkVerdict]]:
    judge = spec.build()
    for chunk in chunks:
        yield chunk, judge.judge(*chunk)


def _verdicts_pooled(spec: JudgeSpec, chunks: Iterable[Chunk], workers: int) -> Iterator[tuple[Chunk, ChunkVerdict]]:
    """Verdicts in input order, at most IN_FLIGHT_PER_WORKER chunks per worker read ahead
    (Pool.imap would read the whole input at once). A worker that dies (killed, out of
    memory) fails the run in one line; multiprocessing.Pool would wait for it forever."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    executor = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start_worker, initargs=(spec,))
    try:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, executor.submit(_judge_chunk, chunk)))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    except BrokenProcessPool:
        raise DataError(f"a worker process judging pairs died (killed, or out of memory?); "
                        f"retry with fewer --workers than {workers}") from None
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def worker_count(requested: int, expected_pairs: int | None) -> int:
    """Processes to judge with: `requested` (0 = the usable cores), 1 (this process) for a corpus of a few chunks."""
    from mt_cli.core.hardware import usable_cores

    workers = requested or usable_cores()
    if expected_pairs is not None and expected_pairs <= 2 * CHUNK_PAIRS:
        return 1
    return max(1, workers)


def run(spec: JudgeSpec, chunks: Iterable[Chunk], workers: int, sink: Sink | None,
        on_pairs: Callable[[int], None] | None = None) -> Summary:
    """Judge every chunk, decide duplicates in order, count, and pass kept pairs to `sink`."""
    summary = Summary(len(spec.against))
    seen = HashSet() if spec.settings.dedup else None
    verdicts = _verdicts_inline(spec, chunks) if workers <= 1 else _verdicts_pooled(spec, chunks, workers)
    for (sources, targets, _), verdict in verdicts:
        codes = final_codes(verdict, seen)
        summary.add(verdict, codes)
        if sink is not None:
            keep = np.flatnonzero(codes == 0)
            sink([sources[i] for i in keep], [targets[i] for i in keep])
        if on_pairs is not None:
            on_pairs(len(codes))
    return summary

#!/usr/bin/env python3
"""Serving benchmark: `mt-cli serve` under C concurrent clients, with and without micro-batching.

Why: a server's clients send one sentence per request; what matters is sentences/s and the
latency each client sees as concurrency grows, and how much micro-batching buys over
decoding requests one by one (`--max-batch-size 1`). For each engine (native, `auto` = the
default, CTranslate2 exports) and each batch size, one `mt-cli -q serve` process on
127.0.0.1 (a free port; all started first, then measured back to back per C so that load
drift hits them alike); for each C in --clients, C clients (asyncio, keep-alive HTTP/1.1 connections, so the client
costs little CPU beside the server) send single sentences of --source, in order, for
--seconds: requests/s, sentences/s, p50/p95/p99 latency (ms) and errors (non-200 answers
or broken connections). A short warm-up precedes each measurement. Loopback only; every
loop ends by its deadline. Prints one JSON document and writes it to --out if given.

  python scripts/bench_serve.py --native /work/m30k/run --ct2 /tmp/m30k-ct2 \\
      --source ../shared/data/multi30k/test2016.en --seconds 10 --out bench/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from json_report import emit

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Load:
    """What C clients got in one measurement window."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sentences: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ENGINE_FLAG = {"native": "native", "auto": "auto", "ctranslate2": "auto"}  # a CT2 export is read by CT2


def start_server(engine: str, model: str, port: int, batch_size: int, args: argparse.Namespace) -> subprocess.Popen:
    """`mt-cli -q serve --engine ...` in its own process; returns once /health says 200."""
    command = [sys.executable, "-m", "mt_cli", "-q", "serve", "-m", model, "--port", str(port),
               "--max-batch-size", str(batch_size), "--max-wait-ms", str(args.max_wait_ms),
               "--threads", str(args.threads), "--engine", ENGINE_FLAG[engine]]
    return launch_server(command, port)


def launch_server(command: list[str], port: int) -> subprocess.Popen:
    """Start an `mt-cli serve` command line on 127.0.0.1:`port`; return once /health says 200
    (at most 300 s), or exit naming the command if it stops first."""
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}: {' '.join(command)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("server not ready within 300 s")


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        return -9


def _request(port: int, sentence: str) -> bytes:
    body = json.dumps({"text": [sentence]}, ensure_ascii=False).encode()
    head = (f"POST /translate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Status code of one HTTP/1.1 answer with a Content-Length body (all uvicorn sends here)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length")
    await reader.readexactly(length)
    return status


async def _client(port: int, sentences: list[str], counter: list[int], deadline: float, load: Load) -> None:
    """One client: a keep-alive connection, one sentence per request, until the deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            sentence = sentences[counter[0] % len(sentences)]
            counter[0] += 1
            started = time.perf_counter()
            try:
                writer.write(_request(port, sentence))
                await writer.drain()
                status = await asyncio.wait_for(_read_answer(reader), timeout=60)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                load.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            if status != 200:
                load.errors += 1
                continue
            load.latencies_ms.append((time.perf_counter() - started) * 1000)
            load.sentences += 1
    finally:
        writer.close()


async def _run_load(port: int, sentences: list[str], clients: int, seconds: float) -> tuple[Load, float]:
    load, counter = Load(), [0]
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(port, sentences, counter, deadline, load) for _ in range(clients)))
    return load, time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1)


def measure(port: int, sentences: list[str], clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    asyncio.run(_run_load(port, sentences, clients, warmup))
    load, elapsed = asyncio.run(_run_load(port, sentences, clients, seconds))
    requests = len(load.latencies_ms) + load.errors
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": requests,
            "requests_per_s": round(requests / elapsed, 1), "sentences_per_s": round(load.sentences / elapsed, 1),
            "p50_ms": _percentile(load.latencies_ms, 50), "p95_ms": _percentile(load.latencies_ms, 95),
            "p99_ms": _percentile(load.latencies_ms, 99),
            "mean_ms": round(statistics.fmean(load.latencies_ms), 1) if load.latencies_ms else None,
            "errors": load.errors}


def _load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def bench_engine(engine: str, model: str, sentences: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One server per batch size, all started first; then for each C the settings are
    measured back to back, so a change in the machine's load hits them alike."""
    servers: dict[int, tuple[int, subprocess.Popen]] = {}
    rows = []
    try:
        for batch_size in args.batch_sizes:
            port = free_port()
            servers[batch_size] = (port, start_server(engine, model, port, batch_size, args))
        for clients in args.clients:
            for batch_size, (port, _) in servers.items():
                row = {"engine": engine, "max_batch_size": batch_size,
                       **measure(port, sentences, clients, args.seconds, args.warmup),
                       "load_average_1m": _load_average()}
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    finally:
        exits = {batch_size: stop_server(process) for batch_size, (_, process) in servers.items()}
    for row in rows:
        row["server_exit"] = exits[row["max_batch_size"]]
    return rows


def speedups(rows: list[dict[str, Any]], batch: int) -> dict[str, dict[str, float]]:
    """sentences/s with micro-batching over sentences/s with --max-batch-size 1."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["max_batch_size"] != batch:
            continue
        one = next((r for r in rows if r["engine"] == row["engine"] and r["clients"] == row["clients"]
                    and r["max_batch_size"] == 1), None)
        if one and one["sentences_per_s"]:
            out.setdefault(row["engine"], {})[str(row["clients"])] = round(
                row["sentences_per_s"] / one["sentences_per_s"], 2)
    return out


def engine_ratio(rows: list[dict[str, Any]], batch: int, engine: str, base: str) -> dict[str, float]:
    """sentences/s of `engine` over `base` per client count, at --max-batch-size `batch`."""
    rate = {(r["engine"], r["clients"]): r["sentences_per_s"] for r in rows if r["max_batch_size"] == batch}
    return {str(c): round(rate[(engine, c)] / rate[(base, c)], 2) for (e, c) in rate
            if e == engine and rate.get((base, c))}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--native", default="", help="native model or run directory ('' = skip)")
    parser.add_argument("--ct2", default="", help="CTranslate2 export ('' = skip)")
    parser.add_argument("--auto", default="", help="model directory served with --engine auto, the default "
                        "('' = skip); give the --native one to compare the two on the same weights")
    parser.add_argument("--source", required=True, help="source sentences, one per line")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--batch-sizes", default="32,1", help="--max-batch-size values (include 1 for the baseline)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0, help="server decode threads (0 = all cores)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per setting")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each setting")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    return args


def main() -> None:
    args = parse_args()
    sentences = [s for s in Path(args.source).read_text(encoding="utf-8").splitlines() if s.strip()]
    rows = []
    for engine, model in (("native", args.native), ("auto", args.auto), ("ctranslate2", args.ct2)):
        if model:
            rows += bench_engine(engine, model, sentences, args)
    batched = max(args.batch_sizes)
    document = {"settings": {k: v for k, v in vars(args).items() if k != "out"} | {"source_lines": len(sentences)},
                "rows": rows, f"speedup_batch{batched}_over_batch1": speedups(rows, batched),
                f"auto_over_native_batch{batched}": engine_ratio(rows, batched, "auto", "native")}
    emit(document, args.out)


if __name__ == "__main__":
    main()

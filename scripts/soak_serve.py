#!/usr/bin/env python3
"""Soak test of `mt-cli serve` under idle and slowloris connections: are real requests answered?

Why: connections that never finish their headers used to be held forever and count against
--max-connections, so a few dozen of them locked every client out. This starts one
`mt-cli -q serve` on 127.0.0.1 (a free port) and, for --seconds, holds --idle connections
that send nothing and --slowloris connections that send a request's headers a byte every
--trickle-s seconds (each reopened, after --reopen-s, when the server closes it), while
--clients clients send real single-sentence translate requests, each on a new connection
(as a new client would). Reports the clients' answered and failed requests (by status, and
broken connections), latency percentiles of the answered ones, and what the server did to
the attacking connections (closed, 408s). Loopback only; every loop ends by its deadline and
the requests are capped by --max-requests. Prints one JSON document (with the machine) and
writes it to --out if given.

  python scripts/soak_serve.py -m runs/demo --idle 100 --slowloris 100 --seconds 60 \\
      --header-timeout 10 --out bench/soak_serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_serve import _percentile, free_port, launch_server, stop_server
from json_report import emit

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["a dog runs .", "the red car .", "a man sees the big house .", "two women eat .",
             "the old tree is green .", "a young cat plays with a ball ."]


@dataclass
class Tally:
    """What one side saw during the soak."""

    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    broken: int = 0  # connections refused, reset or timed out
    opened: int = 0
    closed_by_server: int = 0


def start_server(model: str, port: int, args: argparse.Namespace) -> subprocess.Popen:
    """`mt-cli -q serve` in its own process; returns once /health says 200 (at most 300 s)."""
    command = [sys.executable, "-m", "mt_cli", "-q", "serve", "-m", model, "--port", str(port),
               "--threads", str(args.threads), "--header-timeout", str(args.header_timeout),
               "--max-connections", str(args.max_connections)]
    return launch_server(command, port)


def _request(port: int, sentence: str) -> bytes:
    body = json.dumps({"text": [sentence]}).encode()
    return (f"POST /translate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def _status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1])


async def client(port: int, deadline: float, budget: list[int], tally: Tally) -> None:
    """Real requests, one per new connection, until the deadline or the shared budget is spent."""
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, asyncio.TimeoutError):
            tally.broken += 1
            await asyncio.sleep(0.05)
            continue
        try:
            writer.write(_request(port, SENTENCES[budget[0] % len(SENTENCES)]))
            status = await asyncio.wait_for(_status(reader), 30)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
            tally.broken += 1
            continue
        finally:
            writer.close()
        tally.statuses[status] += 1
        if status == 200:
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            await asyncio.sleep(0.05)  # a refused client waits a little, as Retry-After asks (briefly)


async def attacker(port: int, deadline: float, trickle: bytes, args: argparse.Namespace, tally: Tally) -> None:
    """One held connection: silent (`trickle` empty) or sending `trickle` a byte every
    --trickle-s seconds; reopened --reopen-s after the server closes it."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(args.reopen_s)
            continue
        tally.opened += 1
        sent = 0
        try:
            while time.monotonic() < deadline:
                if sent < len(trickle):
                    writer.write(trickle[sent:sent + 1])
                    sent += 1
                try:
                    data = await asyncio.wait_for(reader.read(65536), max(0.01, min(
                        args.trickle_s if trickle else 1.0, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    continue
                if data.startswith(b"HTTP/1.1 "):
                    tally.statuses[int(data.split(b" ", 2)[1])] += 1
                if not data:
                    tally.closed_by_server += 1
                    break
        except OSError:
            tally.closed_by_server += 1
        finally:
            writer.close()
        await asyncio.sleep(args.reopen_s)


async def soak(port: int, args: argparse.Namespace) -> dict[str, Tally]:
    deadline = time.monotonic() + args.seconds
    slow = (f"POST /translate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            + "X-Padding: " + "a" * 4000).encode()  # never ends within any plausible soak
    tallies = {"clients": Tally(), "idle": Tally(), "slowloris": Tally()}
    budget = [args.max_requests]
    await asyncio.gather(
        *(attacker(port, deadline, b"", args, tallies["idle"]) for _ in range(args.idle)),
        *(attacker(port, deadline, slow, args, tallies["slowloris"]) for _ in range(args.slowloris)),
        *(client(port, deadline, budget, tallies["clients"]) for _ in range(args.clients)))
    return tallies


def report(tallies: dict[str, Tally], elapsed: float) -> dict[str, Any]:
    clients = tallies["clients"]
    answered = clients.statuses.get(200, 0)
    failed = sum(clients.statuses.values()) - answered + clients.broken
    return {
        "clients": {"answered": answered, "failed": failed, "statuses": dict(clients.statuses),
                    "broken_connections": clients.broken, "answered_per_s": round(answered / elapsed, 1),
                    "p50_ms": _percentile(clients.latencies_ms, 50), "p95_ms": _percentile(clients.latencies_ms, 95),
                    "p99_ms": _percentile(clients.latencies_ms, 99),
                    "max_ms": round(max(clients.latencies_ms), 1) if clients.latencies_ms else None},
        **{name: {"connections_opened": t.opened, "closed_by_server": t.closed_by_server,
                  "answers": dict(t.statuses)} for name, t in tallies.items() if name != "clients"},
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", required=True, help="model or run directory")
    parser.add_argument("--idle", type=int, default=100, help="connections that send nothing")
    parser.add_argument("--slowloris", type=int, default=100, help="connections trickling headers")
    parser.add_argument("--clients", type=int, default=2, help="clients sending real requests")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the soak lasts (at most 3600)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="most client requests in all")
    parser.add_argument("--trickle-s", type=float, default=2.0, help="seconds between slowloris bytes")
    parser.add_argument("--reopen-s", type=float, default=0.5, help="an attacker's pause before reopening")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="the server's --header-timeout")
    parser.add_argument("--max-connections", type=int, default=64, help="the server's --max-connections")
    parser.add_argument("--threads", type=int, default=1, help="the server's decode threads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds: must be in (0, 3600]")
    return args


def main() -> None:
    args = parse_args()
    port = free_port()
    process = start_server(args.model, port, args)
    started = time.perf_counter()
    try:
        tallies = asyncio.run(soak(port, args))
    finally:
        exit_code = stop_server(process)
    elapsed = time.perf_counter() - started
    document = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "seconds": round(elapsed, 1),
                **report(tallies, elapsed), "server_exit": exit_code,
                "load_average_1m": round(os.getloadavg()[0], 2)}
    emit(document, args.out)


if __name__ == "__main__":
    main()

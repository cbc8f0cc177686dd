#!/usr/bin/env python3
"""Memory does not grow with the corpus: peak RSS of a short `mt-cli train` on Multi30k as is
and repeated to millions of lines (ids are cached memory-mapped; batches are planned from
lengths only). Prints one JSON document.

  python scripts/bench_data_stream.py --lines 5000000 --out bench/stream.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_report import emit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "multi30k"


def repeat_corpus(data: Path, out: Path, lines: int) -> tuple[Path, Path]:
    """Write `lines` pairs by cycling through train.en/train.de (streamed, never in memory)."""
    pairs = []
    for side in ("en", "de"):
        source = (data / f"train.{side}").read_bytes().splitlines(keepends=True)
        target = out / f"big.{side}"
        with open(target, "wb") as handle:
            handle.writelines(source[i % len(source)] for i in range(lines))
        pairs.append(target)
    return pairs[0], pairs[1]


def train_peak_rss(config: Path, src: Path, tgt: Path, spm: Path, run_dir: Path, steps: int) -> dict:
    cmd = [sys.executable, "-m", "mt_cli", "-q", "train", str(config), "--run-dir", str(run_dir),
           "--set", f"data.train.0.source={src}", "--set", f"data.train.0.target={tgt}",
           "--set", "data.dev=null", "--set", "data.test=null", "--set", f"tokenizer.model={spm}",
           "--set", f"train.max_steps={steps}", "--set", "train.max_minutes=0",
           "--set", f"train.save_every={steps}", "--set", "train.log_every=10"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: training failed: {stderr.strip().splitlines()[-1:]}")
    return {"wall_s": round(time.perf_counter() - started, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "multi30k-en-de.yaml")
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "mt_cli", "-q", "tokenize", "train", "-i",
                        str(args.data / "train.en"), "-i", str(args.data / "train.de"),
                        "--vocab-size", "8000", "--model-prefix", str(work / "spm")], check=True)
        spm = work / "spm.model"
        small = train_peak_rss(args.config, args.data / "train.en", args.data / "train.de", spm,
                               work / "run-small", args.steps)
        src, tgt = repeat_corpus(args.data, work, args.lines)
        big = train_peak_rss(args.config, src, tgt, spm, work / "run-big", args.steps)
        cache_mb = sum(p.stat().st_size for p in (work / "run-big" / "cache").rglob("*") if p.is_file()) / 2**20
    doc = {"benchmark": "data_stream", "steps": args.steps,
           "multi30k_29k_lines": small, f"repeated_{args.lines}_lines": {**big, "id_cache_mb": round(cache_mb, 1)},
           "rss_ratio": round(big["peak_rss_mb"] / small["peak_rss_mb"], 2)}
    emit(doc, args.out)


if __name__ == "__main__":
    main()

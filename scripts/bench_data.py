#!/usr/bin/env python3
"""Speed and memory of `mt-cli data clean` at millions of pairs: Multi30k's training set
repeated with perturbations (words swapped between sentences, exact repeats, French targets,
halved targets, empty/URL/number/identical pairs), cleaned en-de; pairs/s and the peak RSS of
the main process and of the whole process tree (the workers), per size. One JSON document.

  python scripts/bench_data.py --pairs 1000000 5000000 --out bench/data.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_report import emit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "multi30k"
NOISE = (("", "Leer."), ("http://www.example.com/index.html?id=42", "http://www.example.de/index.html?id=42"),
         ("2019 - 2020 : 12,345", "2019 - 2020 : 12.345"), ("<br/> <br/> <b>x</b>", "<br/> <br/> <b>y</b>"))


def _perturbed(i: int, en: list[str], de: list[str], fr: list[str], rng: random.Random) -> tuple[str, str]:
    j = i % len(en)
    source, target = en[j], de[j]
    if i < len(en):
        return source, target
    roll = rng.random()
    if roll < 0.10:
        return source, target  # an exact repeat
    if roll < 0.15:
        return source, fr[j]  # the wrong language
    if roll < 0.20:
        words = target.split()
        return source, " ".join(words[: max(1, len(words) // 4)])  # a target cut short
    if roll < 0.25:
        return NOISE[i % len(NOISE)] if i % 5 else (source, source)
    k = rng.randrange(len(en))  # a word of another sentence in each side: a new, plausible pair
    s_words, t_words = source.split(), target.split()
    s_words[rng.randrange(len(s_words))] = rng.choice(en[k].split())
    t_words[rng.randrange(len(t_words))] = rng.choice(de[k].split())
    return " ".join(s_words), " ".join(t_words)


def build_corpus(data: Path, out: Path, pairs: int) -> tuple[Path, Path]:
    """`pairs` pairs made from Multi30k train (streamed out, never all in memory)."""
    en, de, fr = ((data / f"train.{lang}").read_text(encoding="utf-8").splitlines() for lang in ("en", "de", "fr"))
    rng = random.Random(1234)
    paths = out / f"bench{pairs}.en", out / f"bench{pairs}.de"
    with open(paths[0], "w", encoding="utf-8") as s_out, open(paths[1], "w", encoding="utf-8") as t_out:
        for i in range(pairs):
            source, target = _perturbed(i, en, de, fr, rng)
            s_out.write(source + "\n")
            t_out.write(target + "\n")
    return paths


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            todo += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            pass
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def clean_run(source: Path, target: Path, out_dir: Path, workers: int) -> dict:
    cmd = [sys.executable, "-m", "mt_cli", "-q", "data", "clean", str(source), str(target),
           "--source-lang", "en", "--target-lang", "de", "-o", str(out_dir), "--workers", str(workers), "--json"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_tree = peak_main = 0.0
    while proc.poll() is None:
        peak_main = max(peak_main, _rss_mb(proc.pid))
        peak_tree = max(peak_tree, sum(_rss_mb(p) for p in _tree(proc.pid)))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"error: data clean failed: {stderr.decode().strip()}")
    report = json.loads(stdout)
    return {"wall_s": round(time.perf_counter() - started, 1), "pairs_per_s": report["pairs_per_s"],
            "peak_rss_main_mb": round(peak_main, 1), "peak_rss_tree_mb": round(peak_tree, 1),
            "workers": report["workers"], "kept": report["pairs"]["kept"],
            "rules": {name: n for name, n in report["rules"].items() if n}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pairs", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--workers", type=int, default=0, help="0 = the usable cores")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        for pairs in args.pairs:
            source, target = build_corpus(args.data, Path(tmp), pairs)
            size_mb = round((source.stat().st_size + target.stat().st_size) / 2**20, 1)
            runs.append({"pairs": pairs, "input_mb": size_mb,
                         **clean_run(source, target, Path(tmp) / f"out{pairs}", args.workers)})
            for path in (source, target):
                os.unlink(path)
    emit({"benchmark": "mt-cli data clean, en-de, Multi30k train repeated with perturbations", "runs": runs},
         args.out)


if __name__ == "__main__":
    main()

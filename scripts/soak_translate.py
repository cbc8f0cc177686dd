"""Soak test of `mt-cli translate`: a large generated file (empty, very long and odd-Unicode
lines mixed in) through `--batch-tokens`, twice (a small and a large file), measuring
lines in/out, peak RSS of the translating process and wall time. Prints JSON.

Memory must not grow with the file: translate streams its input in chunks and writes
through a temp file, so the peak RSS for N and 10N lines should be about the same.

    python scripts/soak_translate.py -m runs/tiny --lines 200000 --small 20000 \
        --batch-tokens 4000 --out soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

WORDS = ["cat", "dog", "man", "woman", "red", "blue", "big", "small", "runs", "eats", "sees",
         "the", "a", "house", "tree", "car", "green", "old", "young", "ball"]
ODD = ["x\u2028y", "tab\there", "nul\x00byte", "lone\rcr", "e\u0301 combining", "😀 emoji 🇩🇪",
       "שלום right-to-left", "zero\u200bwidth", "\ufeffbom inside", "ｆｕｌｌ ｗｉｄｔｈ", "\u0085nel"]


def generate(path: Path, n: int, seed: int = 0) -> None:
    """n lines: ~5% empty, ~1% very long (600 words), ~5% odd Unicode, the rest toy sentences."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for _ in range(n):
            roll = rng.random()
            if roll < 0.05:
                line = ""
            elif roll < 0.06:
                line = " ".join(rng.choice(WORDS) for _ in range(600))
            elif roll < 0.11:
                line = f"{rng.choice(ODD)} {rng.choice(WORDS)} ."
            else:
                line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))) + " ."
            out.write(line + "\n")


def count_lines(path: Path) -> int:
    """Lines by mt-cli's rule: b"\\n"-terminated records (a final unterminated one counts)."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def run_once(command: list[str], log: Path) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit code) of one child process (wait4 = its own rusage).

    stderr goes to a file: an unread pipe would fill with truncation warnings and block it."""
    start = time.monotonic()
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - start, usage.ru_maxrss, proc.returncode


def soak(model: str, lines: int, batch_tokens: int, work: Path, extra: list[str]) -> dict[str, object]:
    src, hyp = work / f"in.{lines}.txt", work / f"out.{lines}.txt"
    generate(src, lines)
    command = [sys.executable, "-m", "mt_cli", "-q", "translate", "-m", model, str(src), "-o", str(hyp),
               "--batch-tokens", str(batch_tokens), *extra]
    wall, rss_kib, code = run_once(command, work / f"stderr.{lines}.txt")
    warnings = (work / f"stderr.{lines}.txt").read_text(errors="replace").count("warning:")
    return {"lines_in": count_lines(src), "lines_out": count_lines(hyp) if hyp.exists() else None,
            "warnings": warnings,
            "exit_code": code, "peak_rss_mib": round(rss_kib / 1024, 1), "wall_s": round(wall, 1),
            "lines_per_s": round(lines / wall, 1), "command": " ".join(command)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", required=True, help="model or run directory")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=20_000, help="the smaller run, for the RSS comparison")
    parser.add_argument("--batch-tokens", type=int, default=4000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mt-cli-soak"))
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("extra", nargs="*", help="more translate options, after --")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = [soak(args.model, n, args.batch_tokens, args.work, args.extra) for n in (args.small, args.lines)]
    small, large = runs
    report = {"runs": runs, "lines_equal": all(r["lines_in"] == r["lines_out"] for r in runs),
              "rss_ratio_large_to_small": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0 if report["lines_equal"] and all(r["exit_code"] == 0 for r in runs) else 1)


if __name__ == "__main__":
    main()

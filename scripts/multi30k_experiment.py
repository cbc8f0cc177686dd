#!/usr/bin/env python3
"""The whole Multi30k En->De experiment: train with a wall-clock budget, decode test2016 with
beam 4 and greedy at checkpoints in time (e.g. 40 and 60 minutes), score with sacreBLEU, and
write a results JSON. Every step is a real `mt-cli` command, so this is also a recipe.

  python scripts/get_multi30k.py --out data/multi30k          # or --from a local copy
  python scripts/multi30k_experiment.py --data data/multi30k --minutes 40,60 --out results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MT_CLI = [sys.executable, "-m", "mt_cli"]


def run(*args: str) -> str:
    """Run one mt-cli command, echoing it; stop the recipe on failure."""
    print("+ mt-cli " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run([*MT_CLI, *args], check=False, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"error: mt-cli {args[0]} failed with exit code {done.returncode}")
    return done.stdout


def data_overrides(data: Path) -> list[str]:
    pairs = {"data.train.0.source": "train.en", "data.train.0.target": "train.de",
             "data.dev.source": "val.en", "data.dev.target": "val.de",
             "data.test.source": "test2016.en", "data.test.target": "test2016.de"}
    out: list[str] = []
    for key, name in pairs.items():
        out += ["--set", f"{key}={data / name}"]
    return out


def score(run_dir: Path, data: Path, beam: int, tag: str) -> dict:
    hyp = run_dir / f"test2016.{tag}.beam{beam}.de"
    started = time.perf_counter()
    run("translate", "-m", str(run_dir), str(data / "test2016.en"), "-o", str(hyp),
        "--beam-size", str(beam))
    seconds = time.perf_counter() - started
    report = json.loads(run("evaluate", "-r", str(data / "test2016.de"), str(hyp), "--json",
                            "--metrics", "bleu,chrf"))
    scores = report["systems"][0]["scores"]
    return {"beam": beam, "bleu": round(scores["bleu"]["score"], 2),
            "chrf": round(scores["chrf"]["score"], 2), "signature": scores["bleu"]["signature"],
            "translate_seconds": round(seconds, 1), "hypotheses": str(hyp)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "multi30k")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "multi30k-en-de.yaml")
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "multi30k-en-de")
    parser.add_argument("--minutes", default="40,60", help="cumulative training budgets to score at")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (args.data / "train.en").is_file():
        sys.exit(f"error: {args.data}/train.en not found; run scripts/get_multi30k.py first")
    extra = data_overrides(args.data) + [x for o in args.overrides for x in ("--set", o)]
    results = {"config": str(args.config), "run_dir": str(args.run_dir), "points": []}
    spent = 0.0
    for budget in [float(m) for m in args.minutes.split(",")]:
        started = time.perf_counter()
        run("train", str(args.config), "--run-dir", str(args.run_dir), *extra,
            "--set", f"train.max_minutes={budget - spent}")
        spent += (time.perf_counter() - started) / 60
        finished = json.loads((args.run_dir / "finished.json").read_text())
        point = {"minutes_budget": budget, "minutes_spent": round(spent, 1), "step": finished["step"],
                 "dev": finished.get("dev_scores"),
                 "test2016": [score(args.run_dir, args.data, 4, f"{int(budget)}min"),
                              score(args.run_dir, args.data, 1, f"{int(budget)}min")]}
        results["points"].append(point)
        print(json.dumps(point), file=sys.stderr, flush=True)
        spent = budget  # the next leg trains for the remaining budget only
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

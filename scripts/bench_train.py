#!/usr/bin/env python3
"""Training throughput benchmark: the small preset on Multi30k in auto/float32/bfloat16, +/- XLA.

Each setting runs the real `mt-cli train` in its own process (clean TensorFlow state) for a
fixed number of steps; throughput is read from metrics.jsonl after a warm-up window, peak RSS,
CPU time and page faults from the child's rusage. Each setting's model FLOP utilisation
(`mfu`) is its model FLOP/s over this machine's matrix-product rate at the step's own shapes
in its precision (scripts/flops.py). Prints one JSON document (and writes it with --out),
with the machine it ran on (`"machine"`, the object of RUN/runtime.json).

  python scripts/bench_train.py --steps 60 --out bench/train.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sentencepiece as spm_lib
from flops import Dims, model_flops_per_s, rate_in_child
from json_report import emit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "multi30k"


def _mt_cli() -> list[str]:
    return [sys.executable, "-m", "mt_cli"]


def train_tokenizer(data: Path, work: Path) -> Path:
    """One joint 8k SentencePiece model shared by all settings."""
    prefix = work / "spm"
    subprocess.run([*_mt_cli(), "-q", "tokenize", "train", "-i", str(data / "train.en"), "-i",
                    str(data / "train.de"), "--vocab-size", "8000", "--model-prefix", str(prefix)], check=True)
    return prefix.with_suffix(".model")


def train_overrides(data: Path, spm: Path, precision: str, xla: bool, steps: int, log_every: int,
                    batch_tokens: int) -> list[str]:
    """The benchmark's training setup as `--set` KEY=VALUE strings on the config (shared with
    profile_train.py, so the profiled step is the benchmarked one)."""
    return [f"data.train.0.source={data / 'train.en'}", f"data.train.0.target={data / 'train.de'}",
            "data.dev=null", "data.test=null",
            f"tokenizer.model={spm}", f"train.precision={precision}",
            f"train.jit_compile={str(xla).lower()}", f"train.max_steps={steps}",
            f"train.log_every={log_every}", f"train.save_every={steps}",
            f"train.batch_tokens={batch_tokens}", "train.max_minutes=0"]


def run_setting(config: Path, data: Path, spm: Path, work: Path, precision: str, xla: bool,
                steps: int, log_every: int, batch_tokens: int) -> dict:
    run_dir = work / f"run-{precision}-{'xla' if xla else 'noxla'}"
    started, started_epoch = time.perf_counter(), time.time()
    sets = train_overrides(data, spm, precision, xla, steps, log_every, batch_tokens)
    cmd = [*_mt_cli(), "-q", "train", str(config), "--run-dir", str(run_dir),
           *[arg for item in sets for arg in ("--set", item)]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, CPU time and faults
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        return {"precision": precision, "xla": xla, "error": stderr.strip().splitlines()[-1:]}
    rss_kb = usage.ru_maxrss
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in records if r["event"] == "train"][1:]  # first window includes tracing
    tokens_per_s = sum(r["tokens_per_s"] for r in windows) / max(len(windows), 1)
    runtime = json.loads((run_dir / "runtime.json").read_text())
    return {
        "precision": precision, "resolved_precision": runtime["precision"]["value"],
        "precision_reason": runtime["precision"]["reason"], "xla": xla, "steps": steps,
        "batch_tokens": batch_tokens,
        "tokens_per_s": round(tokens_per_s, 1),
        "steps_per_s": round(tokens_per_s / _tokens_per_step(records, windows), 3) if windows else None,
        "final_loss": round(windows[-1]["loss"], 4) if windows else None,
        "loss_curve": [[r["step"], round(r["loss"], 4)] for r in records if r["event"] == "train"],
        "wall_s": round(wall, 1),
        "first_step_s": _first_step_s(records, started_epoch, log_every),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "user_s": round(usage.ru_utime, 1), "system_s": round(usage.ru_stime, 1),
        "cpus_busy": round((usage.ru_utime + usage.ru_stime) / wall, 2),
        "page_faults": usage.ru_minflt + usage.ru_majflt,
    }


def _first_step_s(records: list[dict], started: float, log_every: int) -> float | None:
    """Command start to the end of step 1: the first log line's time less its other
    log_every - 1 steps at the steady rate of the later windows (an estimate)."""
    train = [r for r in records if r["event"] == "train"]
    if len(train) < 3:
        return None
    steady = (train[-1]["time"] - train[1]["time"]) / max(train[-1]["step"] - train[1]["step"], 1)
    return round(train[0]["time"] - started - (train[0]["step"] - 1) * steady, 2)


def _tokens_per_step(records: list[dict], windows: list[dict]) -> float:
    """Average source+target tokens per step, from the windows' token rate and durations."""
    times = [r["time"] for r in records if r["event"] == "train"]
    steps = [r["step"] for r in records if r["event"] == "train"]
    spans = [(t1 - t0, s1 - s0, w["tokens_per_s"]) for t0, t1, s0, s1, w in
             zip(times, times[1:], steps, steps[1:], windows)]
    tokens = sum(rate * dt for dt, _, rate in spans)
    return tokens / max(sum(n for _, n, _ in spans), 1)


def source_share(spm: Path, data: Path) -> float:
    """Source pieces over source + target pieces in the corpus (the split of fed tokens)."""
    processor = spm_lib.SentencePieceProcessor(model_file=str(spm))
    counts = [sum(len(ids) for ids in processor.encode((data / name).read_text(encoding="utf-8").splitlines()))
              for name in ("train.en", "train.de")]
    return counts[0] / sum(counts)


def add_utilisation(results: list[dict], config: Path, spm: Path, data: Path, batch_tokens: int) -> dict:
    """Each result's model GFLOP/s and mfu; returns the measured matrix-product rates."""
    from mt_cli.core.config_loading import load_config  # importable: json_report put the repository on the path

    cfg = load_config(config)
    vocab = spm_lib.SentencePieceProcessor(model_file=str(spm)).get_piece_size()
    dims = Dims(cfg.model.encoder_layers, cfg.model.decoder_layers, cfg.model.hidden_dim, cfg.model.ffn_dim, vocab)
    share = source_share(spm, data)
    rates = {}
    for r in results:
        if "error" in r:
            continue
        precision = r["resolved_precision"]
        if precision not in rates:
            rates[precision] = rate_in_child(dims, batch_tokens, precision)
        achieved = model_flops_per_s(dims, r["tokens_per_s"], share)
        r["model_gflops_per_s"] = round(achieved / 1e9, 1)
        r["matmul_gflops_per_s"] = rates[precision]["gflops"]
        r["mfu"] = round(achieved / 1e9 / rates[precision]["gflops"], 3)
    return {"source_share": round(share, 4), "rows": batch_tokens, "rates": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "multi30k-en-de.yaml")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--settings", default="auto:0,float32:0,bfloat16:0,float32:1,bfloat16:1",
                        help="precision:xla pairs (auto: what mt-cli picks on this machine)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not (args.data / "train.en").is_file():
        sys.exit(f"error: {args.data}/train.en not found; get the data with scripts/get_multi30k.py")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        spm = train_tokenizer(args.data, work)
        results = []
        for item in args.settings.split(","):
            precision, xla = item.split(":")
            results.append(run_setting(args.config, args.data, spm, work, precision, xla == "1",
                                       args.steps, args.log_every, args.batch_tokens))
            print(json.dumps(results[-1]), file=sys.stderr)
        utilisation = add_utilisation(results, args.config, spm, args.data, args.batch_tokens)
    base = next((r for r in results if r["precision"] == "float32" and not r["xla"] and "error" not in r), None)
    # The peer's figure is not comparable across machines: measure it in the same sitting
    # (../shared/peers/opennmt-tf/train.sh) rather than quoting one.
    for r in results:
        if base and "error" not in r:
            r["speedup_vs_float32"] = round(r["tokens_per_s"] / base["tokens_per_s"], 2)
    doc = {"benchmark": "train",
           "model": "transformer-small (3+3, d256, ffn1024, 4 heads)",
           "data": str(args.data), "results": results, "utilisation": utilisation}
    emit(doc, args.out)


if __name__ == "__main__":
    main()

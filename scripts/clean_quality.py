#!/usr/bin/env python3
"""How well `mt-cli data clean` separates noise from clean pairs, on a corpus with a label per line.

Runs the real command on NOISY/train.en and NOISY/train.de (made by scripts/make_noisy_multi30k.py,
with NOISY/labels.txt), then finds which input lines were kept: the output is the kept pairs in
input order, so it is matched to the input walking both in order, each kept pair at the first
input pair with the same bytes. That is exact, duplicates included: identical pairs get the same
verdict from every rule but `duplicate`, which keeps the first, so a kept pair is always the first
occurrence of its bytes. Prints per noise kind how many pairs there are and how many were removed,
and the share of clean pairs kept, as JSON (--out also writes it to a file).

    python scripts/clean_quality.py --noisy /work/exp/noisy --data /work/shared/data/multi30k \\
        --out /work/exp/noisy/clean_quality.json
    python scripts/clean_quality.py --noisy /work/exp/noisy --data /work/shared/data/multi30k \\
        -- --max-ratio-chars 2.0            # flags after -- go to data clean

`dropped_by` (per kind, the rule that dropped each removed pair) is worked out in this process with
the command's own rules (mt_cli.core.clean_rules.Judge) and the duplicate rule's "same bytes came
earlier"; the removed/kept counts come from the command's output alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_REMOVED = 90.0  # % of each noise kind
TARGET_KEPT = 95.0  # % of the clean pairs
EXAMPLES = 3


def read_bytes_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def kept_mask(sources: list[bytes], targets: list[bytes], kept_sources: list[bytes],
              kept_targets: list[bytes]) -> list[bool]:
    """Which input pairs the output holds: the output in order, each at the next input pair with its bytes."""
    kept = [False] * len(sources)
    j = 0
    for i, pair in enumerate(zip(sources, targets)):
        if j < len(kept_sources) and pair == (kept_sources[j], kept_targets[j]):
            kept[i] = True
            j += 1
    if j != len(kept_sources):
        sys.exit(f"error: output pair {j + 1} is not in the input in order: the output is not the input's subsequence")
    return kept


def rules_dropping(sources: list[bytes], targets: list[bytes], against: list[Path], settings_args: list[str],
                   langs: tuple[str, str]) -> list[str]:
    """Per input pair, the rule that drops it ("" if none), by the command's own rules in its order."""
    from mt_cli.app.data.reading import load_against
    from mt_cli.core.clean_rules import Judge, pair_hash
    from mt_cli.core.clean_settings import FORMAT_RULES, RULES, CleanConfig

    settings = CleanConfig(**parse_settings(settings_args))
    tables, _ = load_against(against)
    judge = Judge(settings, langs, tables)
    codes = []
    step = 2000
    for start in range(0, len(sources), step):
        chunk = judge.judge(sources[start:start + step], targets[start:start + step],
                            [False] * len(sources[start:start + step]))
        codes.extend(int(code) for code in chunk.code)
    seen: set[int] = set()
    out = []
    for source, target, code in zip(sources, targets, codes):
        rule = RULES[code - 1] if code else ""
        if rule not in FORMAT_RULES and settings.dedup:
            digest = pair_hash(source, target)
            if digest in seen:
                rule = "duplicate"
            seen.add(digest)
        out.append(rule)
    return out


def parse_settings(args: list[str]) -> dict:
    """CleanConfig fields from the data clean flags passed through (the rule flags only)."""
    import dataclasses

    from mt_cli.core.clean_settings import CleanConfig

    by_flag = {f.metadata["flag"]: f for f in dataclasses.fields(CleanConfig)}
    values: dict = {}
    i = 0
    while i < len(args):
        field = by_flag.get(args[i])
        if field is None:
            i += 1
            continue
        if field.type in ("bool", bool):
            values[field.name] = not field.default
            i += 1
            continue
        raw = args[i + 1]
        kind = type(field.default)
        values[field.name] = tuple(raw.split(",")) if kind is tuple else kind(raw)
        i += 2
    return values


def machine() -> dict:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    info = {key.strip(): value.strip() for key, value in info.items()}
    flags = set(info.get("Flags", "").split())
    return {"model_name": info.get("Model name"), "cpus": info.get("CPU(s)"),
            "flags": {flag: flag in flags for flag in ("avx2", "avx512f", "avx512_bf16")}
            | {"amx": any(flag.startswith("amx") for flag in flags)}}


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noisy", type=Path, required=True, help="directory with train.en, train.de, labels.txt")
    parser.add_argument("--data", type=Path, required=True, help="Multi30k directory with test2016.en/.de")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--keep-output", type=Path, help="data clean's -o (default: a temporary directory)")
    parser.add_argument("clean_args", nargs="*", help="after --: more flags for data clean")
    args = parser.parse_args(argv)

    source, target, labels_path = args.noisy / "train.en", args.noisy / "train.de", args.noisy / "labels.txt"
    against = [args.data / "test2016.en", args.data / "test2016.de"]
    labels = labels_path.read_text(encoding="utf-8").splitlines()
    sources, targets = read_bytes_lines(source), read_bytes_lines(target)
    if not len(labels) == len(sources) == len(targets):
        sys.exit(f"error: {len(sources)} sources, {len(targets)} targets, {len(labels)} labels")

    with tempfile.TemporaryDirectory(prefix="clean-quality-") as tmp:
        out_dir = args.keep_output or Path(tmp) / "cleaned"
        cmd = [sys.executable, "-m", "mt_cli", "-q", "data", "clean", str(source), str(target),
               "--source-lang", "en", "--target-lang", "de", "-o", str(out_dir),
               *(arg for path in against for arg in ("--against", str(path))), "--json", *args.clean_args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"error: data clean failed: {proc.stderr.strip()}")
        report = json.loads(proc.stdout)
        kept = kept_mask(sources, targets, read_bytes_lines(out_dir / source.name),
                         read_bytes_lines(out_dir / target.name))
    dropped_by = rules_dropping(sources, targets, against, args.clean_args, ("en", "de"))
    mismatch = sum((rule == "") != is_kept for rule, is_kept in zip(dropped_by, kept))

    kinds: dict[str, dict] = {}
    for kind in dict.fromkeys(labels):
        rows = [i for i, label in enumerate(labels) if label == kind]
        removed = [i for i in rows if not kept[i]]
        entry = {"count": len(rows), "removed": len(removed), "removed_pct": pct(len(removed), len(rows)),
                 "kept": len(rows) - len(removed), "kept_pct": pct(len(rows) - len(removed), len(rows)),
                 "dropped_by": dict(Counter(dropped_by[i] for i in removed).most_common())}
        wrong = removed if kind == "clean" else [i for i in rows if kept[i]]
        entry["examples_" + ("dropped" if kind == "clean" else "kept")] = [
            {"line": i + 1, "source": sources[i].decode("utf-8", "replace"),
             "target": targets[i].decode("utf-8", "replace"), "rule": dropped_by[i] or None}
            for i in wrong[:EXAMPLES]]
        kinds[kind] = entry
    clean = kinds.pop("clean")
    noise = {kind: kinds[kind] for kind in sorted(kinds)}
    result = {
        "command": shlex.join(["mt-cli", *(("CLEANED" if arg == str(out_dir) and not args.keep_output else arg)
                                           for arg in cmd[3:])]),
        "pairs": len(labels),
        "clean": clean,
        "noise": noise,
        "noise_total": {"count": sum(e["count"] for e in noise.values()),
                        "removed": sum(e["removed"] for e in noise.values())},
        "targets": {"removed_pct_each_kind": TARGET_REMOVED, "clean_kept_pct": TARGET_KEPT},
        "below_target": [kind for kind, e in noise.items() if e["removed_pct"] < TARGET_REMOVED]
        + (["clean"] if clean["kept_pct"] < TARGET_KEPT else []),
        "cleaner": {"pairs": report["pairs"], "rules": {k: v for k, v in report["rules"].items() if v},
                    "seconds": report.get("seconds"), "settings": report.get("settings")},
        "dropped_by_disagrees_with_output": mismatch,
        "machine": machine(),
    }
    result["noise_total"]["removed_pct"] = pct(result["noise_total"]["removed"], result["noise_total"]["count"])
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

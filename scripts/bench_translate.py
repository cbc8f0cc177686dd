#!/usr/bin/env python3
"""Translation benchmark: `mt-cli translate` end to end and decode-only, per engine.

Why: users feel the whole command (start-up, model load, graph tracing, decoding, writing)
and, in pipes, the time to the first line; decoding changes are judged on the warm decode
alone. Engines, all on the same weights in one sitting: the native engine per compute dtype
(float32, bfloat16), and CTranslate2 exports of the same model made by `mt-cli export` per
quantization (float32, int8), plus raw CTranslate2 (a minimal Python process: SentencePiece +
ctranslate2.Translator, no mt-cli) as the bar, and `auto` (no --engine: what a user gets, the
model directory's own CTranslate2 conversion when it has one). For each, on the same input and settings
(beam 4, batch 32 by default):

  cli          the real `mt-cli translate` in its own process: wall time, peak RSS (the
               child's own rusage via os.wait4), sentences/s, target SentencePiece tokens/s,
               BLEU against --reference if given;
  stream       a second process with --stream, its stdout read as it comes: time from the
               command's start to its first output line, and its wall time;
  decode_only  in this process: `open_translator`, warm up on the first lines, then time
               `translate` over all lines (and check it matches the CLI output).

and the crossover: per native row, the input length past which its faster warm decoding
repays its longer start against `auto` (none where it decodes no faster).

Prints one JSON document and writes it to --out if given. Stdlib + mt_cli (+ sacrebleu).

  python scripts/bench_translate.py --model runs/multi30k-small --reference \\
      ../shared/data/multi30k/test2016.de --ct2 float32,int8 --out bench/translate.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from json_report import emit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "multi30k" / "test2016.en"


@dataclass(frozen=True)
class BenchConfig:
    model: Path
    input: Path
    reference: Path | None
    dtypes: tuple[str, ...]
    ct2: tuple[str, ...]
    shortlists: tuple[int, ...]
    beam_size: int
    batch_size: int
    threads: int
    warmup_lines: int
    max_lines: int
    out: Path | None
    paired: int = 0
    paired_only: bool = False


@dataclass(frozen=True)
class ProcessRun:
    """One finished child process."""

    returncode: int
    wall_s: float
    first_line_s: float | None
    peak_rss_mib: float
    stdout: bytes
    stderr_tail: str
    cpu_s: float = 0.0  # user + system
    system_s: float = 0.0
    page_faults: int = 0


# ---------------------------------------------------------------- arguments and inputs

def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", type=Path, required=True,
                        help="export directory, or a run directory (its export/ is used)")
    parser.add_argument("--input", "-i", type=Path, default=DEFAULT_INPUT,
                        help=f"source text, one sentence per line (default: {DEFAULT_INPUT})")
    parser.add_argument("--reference", "-r", type=Path, default=None,
                        help="reference translations for BLEU (optional)")
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="comma-separated compute dtypes (default: float32,bfloat16)")
    parser.add_argument("--ct2", default="",
                        help="comma-separated CTranslate2 quantizations to export and compare, "
                             "e.g. float32,int8 (needs the ctranslate2 extra; default: none)")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (0 = all cores)")
    parser.add_argument("--warmup-lines", type=int, default=10,
                        help="lines translated before timing the in-process decode")
    parser.add_argument("--max-lines", type=int, default=0,
                        help="use only the first N input lines (0 = all)")
    parser.add_argument("--shortlist", default="",
                        help="comma-separated vocabulary shortlist sizes: extra native engines per dtype")
    parser.add_argument("--paired", type=int, default=0,
                        help="N alternating runs of the no-flag command and raw CTranslate2 float32 on the "
                             "directory's own conversion, for their ratio (default: 0, none)")
    parser.add_argument("--paired-only", action="store_true",
                        help="measure only the --paired runs (no engine rows)")
    parser.add_argument("--out", "-o", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    dtypes = tuple(d.strip() for d in args.dtypes.split(",") if d.strip())
    unknown = [d for d in dtypes if d not in ("float32", "bfloat16")]
    if not dtypes or unknown:
        parser.error(f"--dtypes: use float32 and/or bfloat16, got {args.dtypes!r}")
    if args.reference is not None and not args.reference.is_file():
        parser.error(f"--reference: {args.reference} not found")
    if not args.input.is_file():
        parser.error(f"--input: {args.input} not found")
    ct2 = tuple(q.strip() for q in args.ct2.split(",") if q.strip())
    shortlists = tuple(int(n) for n in args.shortlist.split(",") if n.strip())
    return BenchConfig(args.model, args.input, args.reference, dtypes, ct2, shortlists, args.beam_size,
                       args.batch_size, args.threads, args.warmup_lines, args.max_lines, args.out, args.paired,
                       args.paired_only)


def read_lines(path: Path, limit: int) -> list[str]:
    """Lines exactly as mt-cli counts them (shared reader), optionally only the first `limit`."""
    from mt_cli.core.textio import read_lines as mt_read_lines

    lines = mt_read_lines(path)
    return lines[:limit] if limit else lines


def mt_cli_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m mt_cli`."""
    script = Path(sys.executable).parent / "mt-cli"
    if script.is_file():
        return [str(script)]
    found = shutil.which("mt-cli")
    return [found] if found else [sys.executable, "-m", "mt_cli"]


def target_spm(model: Path) -> Path:
    """The target-side SentencePiece model of an export (or run) directory."""
    from mt_cli.engines.locate import MANIFEST_FILE, resolve_model_dir

    directory = resolve_model_dir(model)
    manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    return directory / manifest["tokenizer"]["target"]


# ---------------------------------------------------------------- measuring a child process

def _peak_rss_mib(rusage: Any) -> float:
    """ru_maxrss is KiB on Linux, bytes on macOS."""
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return round(rusage.ru_maxrss * scale / (1024 * 1024), 1)


def _read_output(stdout: IO[bytes], started: float) -> tuple[bytes, float | None]:
    """Read a child's stdout line by line; note when the first line arrived."""
    chunks: list[bytes] = []
    first: float | None = None
    for raw in iter(stdout.readline, b""):
        if first is None:
            first = time.perf_counter() - started
        chunks.append(raw)
    return b"".join(chunks), first


def run_measured(command: list[str], stdin_path: Path) -> ProcessRun:
    """Run `command` with a file on stdin; wall time, first-line time and its own peak RSS.

    os.wait4 gives this child's rusage, unlike RUSAGE_CHILDREN, whose ru_maxrss is the
    maximum over every child so far and so cannot be split per run.
    """
    with open(stdin_path, "rb") as stdin, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
        assert proc.stdout is not None
        output, first_line = _read_output(proc.stdout, started)
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        proc.stdout.close()
        stderr.seek(0)
        tail = stderr.read().decode("utf-8", "replace").strip().splitlines()[-5:]
    return ProcessRun(proc.returncode, round(wall, 3),
                      None if first_line is None else round(first_line, 3),
                      _peak_rss_mib(rusage), output, "\n".join(tail),
                      round(rusage.ru_utime + rusage.ru_stime, 2), round(rusage.ru_stime, 2),
                      rusage.ru_minflt + rusage.ru_majflt)


@dataclass(frozen=True)
class Engine:
    """One way to translate: a model directory (native or CTranslate2) and its extra flags."""

    name: str
    model: Path
    flags: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    engine: str = "native"  # what decode_only opens (the CLI row passes its flags instead)


def cli_args(cfg: BenchConfig, engine: Engine, stream: bool) -> list[str]:
    args = [*mt_cli_command(), "translate", "-m", str(engine.model), "--beam-size", str(cfg.beam_size),
            "--batch-size", str(cfg.batch_size), "--threads", str(cfg.threads), *engine.flags]
    return args + ["--stream"] if stream else args


RAW_CT2 = """
import sys, ctranslate2, sentencepiece
model, spm_src, spm_tgt, beam, batch, threads, penalty, a, b = sys.argv[1:10]
src = sentencepiece.SentencePieceProcessor(model_file=spm_src)
tgt = sentencepiece.SentencePieceProcessor(model_file=spm_tgt)
translator = ctranslate2.Translator(model, device="cpu", inter_threads=1, intra_threads=int(threads))
lines = sys.stdin.read().split("\\n")[:-1]
pieces = src.Encode(lines, out_type=str)
limit = int(float(a) * (max(map(len, pieces)) + 1) + int(b))  # mt-cli's a * length + b, whole file
results = translator.translate_batch(pieces, beam_size=int(beam), max_batch_size=int(batch),
                                     length_penalty=float(penalty), max_decoding_length=limit)
out = tgt.Decode([[p for p in r.hypotheses[0] if p != "</s>"] for r in results])
sys.stdout.write("".join(line + "\\n" for line in out))
"""


def has_ct2_weights(engine: Engine) -> bool:
    """A CTranslate2 export, or `auto` on a model directory holding its conversion."""
    from mt_cli.engines.locate import resolve_model_dir

    return engine.engine != "native" and (resolve_model_dir(engine.model) / "model.bin").is_file()


def raw_ct2_args(cfg: BenchConfig, engine: Engine) -> list[str]:
    """A minimal CTranslate2 process (no mt-cli): the bar for the whole-command time, with
    the model's own length penalty and output limit so both decode the same way."""
    import yaml

    from mt_cli.engines.locate import resolve_model_dir

    model = resolve_model_dir(engine.model)
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    decode = yaml.safe_load((model / "config.yaml").read_text(encoding="utf-8"))["decode"]
    tok = manifest["tokenizer"]
    return [sys.executable, "-c", RAW_CT2, str(model), str(model / tok["source"]),
            str(model / tok["target"]), str(cfg.beam_size), str(cfg.batch_size), str(cfg.threads),
            str(decode["length_penalty"]), str(decode["max_length_a"]), str(decode["max_length_b"])]


# ---------------------------------------------------------------- scoring helpers

def count_tokens(spm: Path, lines: list[str]) -> int:
    """Target SentencePiece pieces in the outputs (no eos)."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm))
    return sum(len(ids) for ids in processor.Encode(lines, out_type=int))


def bleu(hypotheses: list[str], reference: Path | None, max_lines: int) -> float | None:
    """Corpus BLEU (sacreBLEU defaults) against the first `max_lines` (0 = all) references."""
    if reference is None:
        return None
    import sacrebleu

    refs = read_lines(reference, max_lines)
    if len(refs) != len(hypotheses):
        raise SystemExit(f"{reference}: {len(refs)} lines for {len(hypotheses)} hypotheses")
    return round(sacrebleu.corpus_bleu(hypotheses, [refs]).score, 2)


def rates(n_lines: int, n_tokens: int, seconds: float) -> dict[str, float]:
    return {"sentences_per_s": round(n_lines / seconds, 2),
            "target_tokens_per_s": round(n_tokens / seconds, 1)}


def _decode_lines(output: bytes) -> list[str]:
    text = output.decode("utf-8")
    return text[:-1].split("\n") if text else []


# ---------------------------------------------------------------- the measurements

def bench_cli(cfg: BenchConfig, command: list[str], source: Path, n_lines: int, spm: Path) -> dict[str, Any]:
    """The whole command, start-up included, output to stdout."""
    run = run_measured(command, source)
    if run.returncode != 0:
        return {"error": f"exit {run.returncode}: {run.stderr_tail}"}
    hyps = _decode_lines(run.stdout)
    if len(hyps) != n_lines:
        return {"error": f"{len(hyps)} output lines for {n_lines} input lines"}
    tokens = count_tokens(spm, hyps)
    return {"wall_s": run.wall_s, "peak_rss_mib": run.peak_rss_mib, "cpu_s": run.cpu_s,
            "system_s": run.system_s, "page_faults": run.page_faults, "target_tokens": tokens,
            **rates(n_lines, tokens, run.wall_s), "bleu": bleu(hyps, cfg.reference, cfg.max_lines),
            "hypotheses": hyps}


def bench_defaults(cfg: BenchConfig, source: Path, n_lines: int, spm: Path) -> dict[str, Any]:
    """`mt-cli translate -m MODEL FILE` with no flag at all (the model's own beam, batch and
    threads; `auto` engine), and its `--stream` first line: what a new user gets."""
    command = [*mt_cli_command(), "translate", "-m", str(cfg.model), str(source)]
    run = run_measured(command, Path(os.devnull))
    if run.returncode != 0:
        return {"cli": {"error": f"exit {run.returncode}: {run.stderr_tail}"}}
    hyps = _decode_lines(run.stdout)
    cli = {"wall_s": round(run.wall_s, 3), "peak_rss_mib": run.peak_rss_mib, **rates(n_lines, count_tokens(spm, hyps),
                                                                                       run.wall_s),
           "bleu": bleu(hyps, cfg.reference, cfg.max_lines)}
    stream = run_measured([*command[:-1], "--stream"], source)
    return {"cli": cli, "stream": {"first_line_s": stream.first_line_s, "wall_s": stream.wall_s,
                                   "peak_rss_mib": stream.peak_rss_mib}}


def bench_paired(cfg: BenchConfig, source: Path, n_lines: int) -> dict[str, Any]:
    """The no-flag `mt-cli translate -m MODEL FILE` and raw CTranslate2 float32 on the same
    `model.bin` (the model's own beam, batch and length settings, all cores), alternated
    `cfg.paired` times: the ratio of their whole commands, side by side."""
    from mt_cli.engines.opened import open_model_dir

    decode = open_model_dir(cfg.model).config.decode
    raw_cfg = BenchConfig(**{**cfg.__dict__, "beam_size": decode.beam_size, "batch_size": decode.batch_size,
                             "threads": 0})
    ours_cmd = [*mt_cli_command(), "translate", "-m", str(cfg.model), str(source)]
    raw_cmd = raw_ct2_args(raw_cfg, Engine("auto", cfg.model, engine="auto"))
    ours, raw = [], []
    for _ in range(cfg.paired):
        for command, into, stdin in ((ours_cmd, ours, Path(os.devnull)), (raw_cmd, raw, source)):
            run = run_measured(command, stdin)
            if run.returncode != 0 or len(_decode_lines(run.stdout)) != n_lines:
                return {"error": f"exit {run.returncode}: {run.stderr_tail}"}
            into.append(run.wall_s)
    return {"defaults_s": ours, "raw_ctranslate2_float32_s": raw,
            "ratios": [round(a / b, 3) for a, b in zip(ours, raw)], "ratio": round(sum(ours) / sum(raw), 3)}


def bench_stream(cfg: BenchConfig, engine: Engine, source: Path) -> dict[str, Any]:
    """--stream (one line at a time, flushed): when does the first line come out?"""
    run = run_measured(cli_args(cfg, engine, stream=True), source)
    if run.returncode != 0:
        return {"error": f"exit {run.returncode}: {run.stderr_tail}"}
    return {"first_line_s": run.first_line_s, "wall_s": run.wall_s,
            "peak_rss_mib": run.peak_rss_mib}


def bench_decode_only(cfg: BenchConfig, engine: Engine, lines: list[str], spm: Path,
                      cli_hyps: list[str] | None) -> dict[str, Any]:
    """Warm in-process decoding: model loaded and graphs traced before the clock starts."""
    from mt_cli.engines.choice import open_translator

    overrides = [f"decode.beam_size={cfg.beam_size}", "decode.n_best=1",
                 f"decode.batch_size={cfg.batch_size}", "decode.batch_tokens=0", *engine.overrides]
    started = time.perf_counter()
    translator = open_translator(engine.model, overrides, cfg.threads, engine=engine.engine)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    translator.translate(lines[: cfg.warmup_lines])
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    hyps = translator.translate(lines)
    seconds = time.perf_counter() - started
    tokens = count_tokens(spm, hyps)
    return {"load_s": round(load_s, 3), "warmup_lines": min(cfg.warmup_lines, len(lines)),
            "warmup_s": round(warmup_s, 3), "seconds": round(seconds, 3), "target_tokens": tokens,
            **rates(len(lines), tokens, seconds),
            "matches_cli": None if cli_hyps is None else hyps == cli_hyps}


def start_tensorflow() -> dict[str, Any]:
    """Import TensorFlow quietly (open_translator sets its thread pools before the first op)."""
    from mt_cli.cli.common import start_tensorflow as quiet_import

    quiet_import()
    import tensorflow as tf

    return {"tensorflow": tf.__version__,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def environment() -> dict[str, Any]:
    from mt_cli import __version__

    return {"mt_cli": __version__}  # the machine itself: "machine", added by json_report.emit


def make_engines(cfg: BenchConfig, tmp: Path) -> list[Engine]:
    """Native engines per dtype, `auto` (what `mt-cli translate -m MODEL` does: the directory's
    own CTranslate2 conversion when it has one), then a CTranslate2 export of the same model
    per quantization."""
    native = ("--engine", "native")
    engines = [Engine(f"native-{d}", cfg.model, (*native, "--dtype", d), (f"decode.dtype={d}",)) for d in cfg.dtypes]
    engines += [Engine(f"native-{d}-shortlist{n}", cfg.model, (*native, "--dtype", d, "--shortlist", str(n)),
                       (f"decode.dtype={d}", f"decode.shortlist={n}")) for n in cfg.shortlists for d in cfg.dtypes]
    engines.append(Engine("auto", cfg.model, ("--engine", "auto"), engine="auto"))
    for quantization in cfg.ct2:
        out = tmp / f"ct2-{quantization}"
        subprocess.run([*mt_cli_command(), "-q", "export", "-m", str(cfg.model), "-o", str(out),
                        "--format", "ctranslate2", "--quantization", quantization], check=True)
        engines.append(Engine(f"ctranslate2-{quantization}", out, engine="ctranslate2"))
    return engines


def crossover(results: dict[str, Any]) -> dict[str, Any]:
    """For each native row against `auto` (what a user gets): the start of each command (its
    first streamed line: start-up, loading, tracing) and the input length past which the native
    engine's faster warm decoding repays its longer start; None where it decodes no faster."""
    def fixed_and_rate(row: dict[str, Any]) -> tuple[float, float] | None:
        stream, warm = row.get("stream", {}), row.get("decode_only", {})
        if stream.get("first_line_s") is None or "sentences_per_s" not in warm:
            return None
        return stream["first_line_s"], warm["sentences_per_s"]

    base = fixed_and_rate(results.get("auto", {}))
    found: dict[str, Any] = {}
    for name, row in results.items():
        native = fixed_and_rate(row) if name.startswith("native-") else None
        if base is None or native is None:
            continue
        (start_c, rate_c), (start_n, rate_n) = base, native
        lines = (start_n - start_c) / (1 / rate_c - 1 / rate_n) if rate_n > rate_c else None
        found[name] = {"fixed_s": round(start_n, 2), "auto_fixed_s": round(start_c, 2),
                       "rate_ratio": round(rate_n / rate_c, 3),
                       "lines": None if lines is None else max(0, round(lines))}
    return found


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    lines = read_lines(cfg.input, cfg.max_lines)
    spm = target_spm(cfg.model)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-translate-") as tmp:
        source = Path(tmp) / "input.txt"  # exactly the lines measured, "\n"-terminated
        source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        if cfg.paired_only:
            return {"lines": len(lines), "model": str(cfg.model), "input": str(cfg.input),
                    "environment": environment(), "results": {"paired": bench_paired(cfg, source, len(lines))}}
        engines = make_engines(cfg, Path(tmp))
        for engine in engines:  # child processes first: this process has no TF yet
            results[engine.name] = {"cli": bench_cli(cfg, cli_args(cfg, engine, False), source, len(lines), spm),
                                    "stream": bench_stream(cfg, engine, source)}
            if has_ct2_weights(engine):  # raw CTranslate2 on the very weights this row decodes with
                raw = bench_cli(cfg, raw_ct2_args(cfg, engine), source, len(lines), spm)
                raw.pop("hypotheses", None)
                results[engine.name]["raw_ctranslate2"] = raw
        results["defaults"] = bench_defaults(cfg, source, len(lines), spm)
        if cfg.paired:
            results["paired"] = bench_paired(cfg, source, len(lines))
        ordered = sorted(engines, key=lambda e: e.engine == "native")  # CT2 before TF
        runtime: dict[str, Any] = {}
        for engine in ordered:
            if engine.engine == "native" and not runtime:
                runtime = start_tensorflow()
            cli_hyps = results[engine.name]["cli"].pop("hypotheses", None)
            results[engine.name]["decode_only"] = bench_decode_only(cfg, engine, lines, spm, cli_hyps)
    return {
        "crossover": crossover(results),
        "model": str(cfg.model), "input": str(cfg.input), "lines": len(lines),
        "reference": None if cfg.reference is None else str(cfg.reference),
        "beam_size": cfg.beam_size, "batch_size": cfg.batch_size, "threads": cfg.threads,
        "environment": {**environment(), **runtime}, "results": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from mt_cli.core.errors import MtError

    cfg = parse_args(argv)
    try:
        report = run_benchmark(cfg)
    except MtError as exc:  # e.g. not a model directory: one line, like mt-cli itself
        print(f"error: {exc}", file=sys.stderr)
        return 1
    emit(report, cfg.out)
    failed = any(isinstance(part, dict) and "error" in part for r in report["results"].values() for part in r.values())
    failed = failed or "error" in report["results"].get("paired", {})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Where a training step's time goes: TensorFlow op types by time, matmuls against the rest.

Why: bench_train.py's `mfu` says how far a step is from the matrix-product rate, not what
fills the gap. This runs the very training bench_train.py benchmarks (the same config and
`--set` overrides, through mt_cli.training.loop.train, each precision in its own process),
profiles `--steps` steps after `--warmup` steps with tf.profiler, and sums the host trace
(XSpace protobuf, read with tensorflow.tsl's xplane_pb2: no TensorBoard plugin needed) by op
type. Op time is summed over TensorFlow's threads, so it can exceed the wall time of a step
when ops overlap; shares are of the summed op time.

  python scripts/profile_train.py --precision float32,bfloat16 --steps 20 --out prof.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench_train import DEFAULT_DATA, REPO, train_overrides, train_tokenizer
from json_report import emit

# Op types (TensorFlow's and oneDNN's rewritten names) that are matrix products.
MATMUL_OPS = frozenset({
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "_FusedMatMul",
    "_MklMatMul", "_MklFusedMatMul", "_MklBatchMatMul", "_MklBatchMatMulV2", "_MklEinsum",
    "_MklNativeMatMul", "_MklNativeFusedMatMul", "_MklNativeBatchMatMul", "_MklNativeBatchMatMulV2",
    "_MklFusedBatchMatMulV2",
})
# Everything else, grouped by what the model does with it (first match wins; the rest is "other").
CATEGORIES: tuple[tuple[str, frozenset[str]], ...] = (
    ("cast", frozenset({"Cast", "_MklCast"})),
    ("dropout (random bytes, compare, select)", frozenset({
        "StatelessRandomUniformFullIntV2", "StatelessRandomUniformV2", "StatelessRandomUniformIntV2",
        "StatelessRandomGetKeyCounter", "Bitcast", "GreaterEqual", "SelectV2", "Select",
        "ZerosLike", "StridedSlice"})),
    ("softmax / loss (exp, logsumexp, one-hot)", frozenset({
        "Softmax", "_MklSoftmax", "Exp", "Log", "Max", "OneHot", "LogSoftmax"})),
    ("reductions (layer-norm means, bias grads, sums)", frozenset({
        "Mean", "Sum", "BiasAddGrad", "Prod", "All", "Any"})),
    ("elementwise arithmetic (layer norm, residuals, scaling)", frozenset({
        "AddV2", "Add", "Sub", "Mul", "RealDiv", "Square", "Rsqrt", "RsqrtGrad", "SquaredDifference",
        "Neg", "BiasAdd", "_MklAdd", "_MklAddV2", "_MklMul", "_MklSub", "_MklSquaredDifference",
        "AddN", "_MklAddN", "Maximum", "Minimum", "Sqrt", "Pow", "IsFinite", "LogicalAnd"})),
    ("activations", frozenset({"Relu", "ReluGrad", "Gelu", "Tanh", "TanhGrad", "_MklRelu", "_MklReluGrad"})),
    ("layout (transpose, reshape, concat, pack)", frozenset({
        "Transpose", "_MklTranspose", "ConjugateTranspose", "Reshape", "ConcatV2", "Pack", "Unpack",
        "Split", "SplitV", "Tile", "ExpandDims", "Squeeze", "Slice", "Fill", "BroadcastTo", "Identity",
        "Shape", "ShapeN", "Range", "BroadcastGradientArgs", "MatrixBandPart"})),
    ("embedding gather / gradient scatter", frozenset({
        "GatherV2", "ResourceGather", "UnsortedSegmentSum", "GatherNd", "ScatterNd", "Where",
        "TensorScatterAdd", "ResourceScatterAdd", "Unique", "DynamicStitch"})),
    ("optimizer (Adam, clipping, variable updates)", frozenset({
        "ResourceApplyAdam", "AssignAddVariableOp", "AssignSubVariableOp", "AssignVariableOp",
        "ReadVariableOp", "L2Loss", "ResourceApplyAdamWithAmsgrad"})),
)


LOOP_FILE = "loop.json"  # beside a kept trace: its precision, step count and loop time


def category(op_type: str) -> str:
    """An op type's group in the tables: matmul, or a named kind of everything else."""
    if op_type in MATMUL_OPS:
        return "matmul"
    for name, ops in CATEGORIES:
        if op_type in ops:
            return name
    return "other"


# ---------------------------------------------------------------------------------------------
# The child: train, profile a window of steps, sum the trace.


class ProfilingReporter:
    """A training-loop Reporter (mt_cli.training.loop) that starts the profiler after step
    `first` and stops it after step `last`, timing the profiled steps on the wall clock."""

    def __init__(self, log_dir: Path, first: int, last: int, host_level: int) -> None:
        self.log_dir, self.first, self.last, self.host_level = log_dir, first, last, host_level
        self.started = self.stopped = 0.0

    def start(self, total_steps: int, first_step: int) -> None:
        pass

    def update(self, step: int, metrics: dict[str, float]) -> None:
        import tensorflow as tf

        if step == self.first:
            options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=self.host_level,
                                                               python_tracer_level=0, device_tracer_level=0)
            tf.profiler.experimental.start(str(self.log_dir), options=options)
            self.started = time.perf_counter()
        elif step == self.last:
            self.stopped = time.perf_counter()
            tf.profiler.experimental.stop()

    def close(self) -> None:
        pass


def _op_type(name: str, display_name: str) -> str | None:
    """An executor op event's type: its TraceMe name is `node_name:OpType` and its display
    name `OpType` (other events, e.g. ExecutorState::Process or MemoryAllocation, have none)."""
    if display_name and name.endswith(":" + display_name):
        return display_name
    return None


def phase(node: str, op_type: str) -> str:
    """Which part of the step an op belongs to, from its node name: Keras's Adam runs inside
    apply_if_finite's tf.cond (`cond/...`), the gradients' division by the token count
    (`truediv_N`) and finiteness checks are top-level, the backward pass is `gradient_tape/...`."""
    if node.startswith("cond/"):
        return "optimizer"
    if node.startswith("gradient_tape/"):
        return "backward"
    if node.startswith("truediv") or op_type in ("IsFinite", "All", "LogicalAnd"):
        return "grad scaling + finite check"
    return "forward"


def module(node: str, op_type: str) -> str:
    """What part of the model an op serves, from its node name (name scopes of the layers)."""
    if node.startswith("cond/"):
        return "optimizer (Adam)"
    if phase(node, op_type) == "grad scaling + finite check":
        return "grad scaling + finite check"
    if "byte_dropout" in node:
        return "dropout"
    if "layer_norm" in node or "encoder_norm" in node or "decoder_norm" in node:
        return "layer norm"
    if op_type in MATMUL_OPS:
        return "matmul"
    if op_type in ("BiasAdd", "BiasAddGrad"):
        return "bias add + bias grad"
    if "multi_head_attention" in node:
        return "attention (softmax, heads, scaling)"
    if "feed_forward" in node:
        return "ffn (activation)"
    if "embedding" in node or op_type in ("GatherV2", "ResourceGather", "UnsortedSegmentSum"):
        return "embeddings (gather, gradient scatter)"
    scope = node.removeprefix("gradient_tape/").split("/", 1)[0]
    if not scope.startswith(("encoder", "decoder")):
        return "loss (logsumexp, softmax grad) + other top-level"
    return "residual adds + other"


def _outermost_ops(plane: Any) -> Iterable[tuple[int, int, str, str]]:
    """(start ps, end ps, op type, node name) of every op event not inside another op event
    of its thread (an op that runs a function counts once)."""
    for line in plane.lines:
        open_until = -1
        for event in sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps)):
            meta = plane.event_metadata[event.metadata_id]
            op_type = _op_type(meta.name, meta.display_name)
            if op_type is None or event.offset_ps < open_until:
                continue
            open_until = event.offset_ps + event.duration_ps
            yield (line.timestamp_ns * 1000 + event.offset_ps, line.timestamp_ns * 1000 + open_until,
                   op_type, meta.name[: -len(op_type) - 1])


def sum_trace(log_dir: Path) -> dict[str, Any]:
    """Time per (op type, phase) over the host plane: `ms` the events' durations summed over
    threads, `wall_ms` each instant of wall time split evenly among the ops running then (so
    it adds up to the time any op runs, `busy_ms`); and the train function's own time."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(log_dir.rglob("*.xplane.pb"))
    if not files:
        raise SystemExit(f"no .xplane.pb under {log_dir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    Key = tuple[str, str, str]  # (op type, phase, module)
    summed: dict[Key, float] = defaultdict(float)
    counts: dict[Key, int] = defaultdict(int)
    edges: list[tuple[int, int, Key]] = []  # (time, +1 start / -1 end, key)
    for start, end, op_type, node in _outermost_ops(plane):
        key = (op_type, phase(node, op_type), module(node, op_type))
        summed[key] += (end - start) / 1e9
        counts[key] += 1
        edges += [(start, 1, key), (end, -1, key)]
    wall: dict[Key, float] = defaultdict(float)
    active: dict[Key, int] = defaultdict(int)
    running, last, busy = 0, 0, 0.0
    for t, change, key in sorted(edges, key=lambda e: (e[0], e[1])):
        if running:
            share = (t - last) / 1e9 / running
            for k, n in active.items():
                wall[k] += share * n
            busy += (t - last) / 1e9
        active[key] += change
        if not active[key]:
            del active[key]
        running += change
        last = t
    function_ms = sum(e.duration_ps / 1e9 for line in plane.lines if line.name == "python" for e in line.events
                      if plane.event_metadata[e.metadata_id].name == "replica_step")
    return {"ops": [{"op": k[0], "phase": k[1], "module": k[2], "ms": summed[k], "wall_ms": wall[k],
                     "count": counts[k]} for k in summed],
            "busy_ms": busy, "function_ms": function_ms}


def child(args: argparse.Namespace) -> None:
    """One precision: train warmup + steps steps in this process, profile the last `steps`."""
    from mt_cli.core.runtime import configure_environment

    configure_environment()  # the allocator mt-cli runs with, set before TensorFlow loads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from mt_cli.core.config_loading import load_config
    from mt_cli.training.loop import train

    total = args.warmup + args.steps
    sets = train_overrides(args.data, args.spm, args.precision, False, total, total, args.batch_tokens)
    cfg = load_config(args.config, sets)
    if args.graph_rewrites:  # experiment: grappler on (mt-cli turns it off, training/steps.py)
        import mt_cli.training.session as session

        session.skip_graph_rewrites = lambda: None
    reporter = ProfilingReporter(args.trace_dir, args.warmup, total, args.host_level)
    train(cfg, args.run_dir, reporter=reporter)
    step_ms = (reporter.stopped - reporter.started) * 1e3 / args.steps
    loop = {"precision": args.precision, "tf": tf.__version__, "steps": args.steps, "wall_ms_per_step": step_ms}
    (args.trace_dir / LOOP_FILE).write_text(json.dumps(loop))  # for --from-traces
    print(json.dumps({**loop, **sum_trace(args.trace_dir)}))


# ---------------------------------------------------------------------------------------------
# The parent: one child per precision, tables.


def _grouped(ops: list[dict[str, Any]], key: Any, steps: int, step_ms: float) -> list[dict[str, Any]]:
    """Rows of per-step wall-share ms (and % of the step), summed ms and calls, by `key(op)`."""
    groups: dict[Any, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for o in ops:
        g = groups[key(o)]
        g[0], g[1], g[2] = g[0] + o["wall_ms"], g[1] + o["ms"], g[2] + o["count"]
    return [{"key": k, "ms_per_step": round(w / steps, 2), "pct_of_step": round(100 * w / steps / step_ms, 1),
             "summed_ms_per_step": round(m / steps, 2), "calls_per_step": round(c / steps, 1)}
            for k, (w, m, c) in sorted(groups.items(), key=lambda kv: -kv[1][0])]


def table(raw: dict[str, Any], top: int) -> dict[str, Any]:
    """Per-step tables: by category, by phase, by op type (and op type within phase)."""
    steps, ops = raw["steps"], raw["ops"]
    step_ms = raw["function_ms"] / steps
    matmul = sum(o["wall_ms"] for o in ops if category(o["op"]) == "matmul") / steps
    busy = raw["busy_ms"] / steps

    def rows(key: Any, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        out = _grouped(ops, key, steps, step_ms)[:limit]
        for r in out:
            k = r.pop("key")
            r.update(dict(zip(name.split("+"), k)) if isinstance(k, tuple) else {name: k})
        return out

    return {
        "precision": raw["precision"], "profiled_steps": steps,
        "loop_ms_per_step": round(raw["wall_ms_per_step"], 1),
        "train_function_ms_per_step": round(step_ms, 1),
        "ops_busy_ms_per_step": round(busy, 1),
        "no_op_running_ms_per_step": round(step_ms - busy, 1),
        "summed_op_ms_per_step": round(sum(o["ms"] for o in ops) / steps, 1),
        "matmul_ms_per_step": round(matmul, 1), "matmul_pct_of_step": round(100 * matmul / step_ms, 1),
        "everything_else_ms_per_step": round(busy - matmul, 1),
        "by_category": rows(lambda o: category(o["op"]), "category"),
        "by_phase": rows(lambda o: o["phase"], "phase"),
        "by_module": rows(lambda o: o["module"], "module"),
        "by_phase_category": rows(lambda o: (o["phase"], category(o["op"])), "phase+category"),
        "by_op": rows(lambda o: (o["op"], category(o["op"])), "op+category", top),
    }


def print_tables(results: Iterable[dict[str, Any]], machine: str) -> None:
    """The tables in text, on stderr (the JSON document is stdout)."""
    for r in results:
        print(f"\n{r['precision']} on {machine}: train function {r['train_function_ms_per_step']} ms/step "
              f"(loop {r['loop_ms_per_step']}), ops running {r['ops_busy_ms_per_step']} ms, none "
              f"{r['no_op_running_ms_per_step']} ms; matmul {r['matmul_ms_per_step']} ms = "
              f"{r['matmul_pct_of_step']}% of the step", file=sys.stderr)
        for title, name, rows in (("category", "category", r["by_category"]), ("phase", "phase", r["by_phase"]),
                                  ("module", "module", r["by_module"]),
                                  ("op type", "op", r["by_op"][:25])):
            print(f"  by {title}:{'':<46} ms/step  %step  summed-ms  calls", file=sys.stderr)
            for x in rows:
                label = x[name] + (f" ({x['category'][:24]})" if name == "op" else "")
                print(f"    {label[:56]:<56} {x['ms_per_step']:>8.1f} {x['pct_of_step']:>6.1f} "
                      f"{x['summed_ms_per_step']:>9.1f} {x['calls_per_step']:>6}", file=sys.stderr)


def run_child(args: argparse.Namespace, precision: str, spm: Path, work: Path) -> dict[str, Any]:
    from mt_cli.core.runtime import child_environment

    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--precision", precision,
           "--spm", str(spm), "--data", str(args.data), "--config", str(args.config),
           "--batch-tokens", str(args.batch_tokens), "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--host-level", str(args.host_level), "--run-dir", str(work / f"run-{precision}"),
           "--trace-dir", str((args.keep_traces or work) / f"trace-{precision}")]
    if args.graph_rewrites:
        cmd.append("--graph-rewrites")
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=child_environment())
    if done.returncode != 0:
        sys.exit(f"profiling {precision} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "multi30k-en-de.yaml")
    parser.add_argument("--precision", default="float32,bfloat16", help="comma-separated train.precision values")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=10, help="steps before profiling (tracing, allocator warm-up)")
    parser.add_argument("--steps", type=int, default=20, help="profiled steps")
    parser.add_argument("--host-level", type=int, default=3,
                        help="host tracer level: 3 records every op (2 only the expensive ones)")
    parser.add_argument("--graph-rewrites", action="store_true",
                        help="experiment: leave TensorFlow's grappler on (mt-cli turns it off)")
    parser.add_argument("--top", type=int, default=40, help="op types listed per precision")
    parser.add_argument("--keep-traces", type=Path, help="keep the raw traces here (TensorBoard-readable)")
    parser.add_argument("--from-traces", type=Path, metavar="DIR",
                        help="tabulate traces kept earlier with --keep-traces DIR instead of training")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spm", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not args.from_traces and not (args.data / "train.en").is_file():
        sys.exit(f"error: {args.data}/train.en not found; get the data with scripts/get_multi30k.py")
    if args.from_traces:  # re-read kept traces (e.g. after changing the grouping), no training
        raws = [{**json.loads((args.from_traces / f"trace-{p}" / LOOP_FILE).read_text()),
                 **sum_trace(args.from_traces / f"trace-{p}")} for p in args.precision.split(",")]
        results = [table(raw, args.top) for raw in raws]
    else:
        with tempfile.TemporaryDirectory(prefix="profile-train-") as tmp:
            work = Path(tmp)
            spm = train_tokenizer(args.data, work)
            results = [table(run_child(args, p, spm, work), args.top) for p in args.precision.split(",")]
    doc = {"benchmark": "train-profile", "model": "transformer-small (3+3, d256, ffn1024, 4 heads)",
           "data": str(args.data), "batch_tokens": args.batch_tokens, "warmup_steps": args.warmup,
           "graph_rewrites": args.graph_rewrites, "host_tracer_level": args.host_level,
           "note": ("ms_per_step: each instant of the train function's wall time split evenly among the ops "
                    "running then (ops overlap on the inter-op threads); summed_ms: the ops' own durations "
                    "added up; pct_of_step: of the train function's wall time"),
           "results": results}
    text = emit(doc, args.out)
    print_tables(results, machine_label(json.loads(text)["machine"]))


def machine_label(machine: dict[str, Any]) -> str:
    """`AMD EPYC, 2 cores, flags: avx2 avx512f avx512_bf16`: every figure names its CPU."""
    cpu = machine.get("cpu", {})
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if cpu.get("flags", {}).get(f)]
    named = " ".join(flags) or "none of avx2/avx512/amx"
    return f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores, flags: {named}"


if __name__ == "__main__":
    main()

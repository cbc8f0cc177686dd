"""Helpers shared by the tests (imported as `from helpers import ...`; fixtures stay in conftest)."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_MULTI30K = REPO.parent / "shared" / "data" / "multi30k"
# Package data (shipped in the wheel, found by mt_cli.core.packaged); configs/ keeps the examples.
PRESET_DIR = REPO / "mt_cli" / "core" / "presets"
DEMO_DIR = REPO / "mt_cli" / "core" / "demo_data"

_WORDS = ["cat", "dog", "man", "woman", "red", "blue", "big", "small", "runs", "eats",
          "sees", "the", "a", "house", "tree", "car", "green", "old", "young", "ball"]
_DICT = {w: w[::-1] + "o" for w in _WORDS}


# What `translate` says on stderr on the trained run with the default engine.
ENGINE_LINE = (b"engine: ctranslate2 (the model directory holds a CTranslate2 float32 conversion and nothing "
               b"asked for needs the native engine); compute type: float32 (set in the config)\n")


# The copy and reversal tasks of conftest's `copy_reverse_tasks` (word i -> WORD i, or word
# n-1-i): a tiny model learns them in a few hundred steps.
TASK_WORDS = ["ka", "lo", "mi", "nu", "pe", "ro", "su", "ti", "va", "we", "xo", "yu"]


def task_files(directory: Path, name: str, reverse: bool, n: int, seed: int) -> tuple[Path, Path]:
    """`n` lines of 3-7 task words and their upper-cased targets (in order, or reversed)."""
    rng = random.Random(seed)
    src, tgt = directory / f"{name}.src", directory / f"{name}.tgt"
    rows = [[rng.choice(TASK_WORDS) for _ in range(rng.randint(3, 7))] for _ in range(n)]
    src.write_text("".join(" ".join(r) + "\n" for r in rows))
    tgt.write_text("".join(" ".join(reversed(r) if reverse else r).upper() + "\n" for r in rows))
    return src, tgt


def train_task(root: Path, reverse: bool) -> Path:
    """A one-layer model trained 350 steps (the real training loop) on the copy or reversal
    task; returns the task's directory (its run in `run/`)."""
    from mt_cli.core.config_checks import from_dict
    from mt_cli.training.loop import train

    name = "reverse" if reverse else "copy"
    directory = root / name
    directory.mkdir()
    train_src, train_tgt = task_files(directory, "train", reverse, 3000, 1)
    raw = {
        "data": {"train": [{"source": str(train_src), "target": str(train_tgt)}],
                 "max_source_tokens": 32, "max_target_tokens": 32},
        "tokenizer": {"vocab_size": 40, "model_type": "word"},
        "model": {"encoder_layers": 1, "decoder_layers": 1, "hidden_dim": 64, "num_heads": 2,
                  "ffn_dim": 128, "dropout": 0.0, "attention_dropout": 0.0, "ffn_dropout": 0.0,
                  "max_length": 32},
        # learning rate 1.0: at 2.0, whether 350 steps learned the reversal turned on float rounding
        # (6 of 9 seeds, for the code before and after a change that only moved rounding); at 1.0,
        # 10 of 10 seeds learned it, in float32 and in bfloat16
        "train": {"max_steps": 350, "batch_tokens": 1024, "warmup_steps": 100, "learning_rate": 1.0,
                  "save_every": 350, "log_every": 350, "seed": 3},
        "decode": {"beam_size": 1},
    }
    train(from_dict(raw, "<alignment test>"), directory / "run")
    return directory


def toy_pairs(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """A learnable toy 'language pair': each word maps to a made-up word, order kept."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 7))]
        pairs.append((" ".join(words) + " .", " ".join(_DICT[w] for w in words) + " ."))
    return pairs


def write_pairs(directory: Path, name: str, pairs: list[tuple[str, str]]) -> tuple[Path, Path]:
    src, tgt = directory / f"{name}.src", directory / f"{name}.tgt"
    src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    tgt.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return src, tgt


def tiny_config_text(toy: Path, **sections: dict) -> str:
    """YAML for the tiny preset on the toy corpus; `sections` add/replace keys."""
    import yaml

    raw = {
        "base": str(PRESET_DIR / "transformer-tiny.yaml"),
        "data": {"train": [{"source": str(toy / "train.src"), "target": str(toy / "train.tgt")}],
                 "dev": {"source": str(toy / "dev.src"), "target": str(toy / "dev.tgt")}},
        "tokenizer": {"vocab_size": 48},
        "train": {"max_steps": 30, "save_every": 10, "eval_every": 1000, "log_every": 10,
                  "batch_tokens": 256, "warmup_steps": 10, "precision": "float32"},
        # Pinned, not `auto`: the suite's results must not depend on the CI machine's CPU
        # (tests/test_runtime.py covers the dtype's `auto`, tests/test_compute_type.py the compute type's).
        "decode": {"dtype": "float32", "compute_type": "float32"},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return yaml.safe_dump(raw)


def assert_one_line_error(outcome: object, *parts: str, after_log: bool = False) -> str:
    """The CLI's error contract: exit 1, exactly one `error: ...` line on stderr, no traceback.

    `outcome` is a CliRunner result, a CompletedProcess or the stderr text itself;
    `after_log` allows progress lines before the error (a training run that fails late).
    Returns the error line.
    """
    if isinstance(outcome, (str, bytes)):
        stderr = outcome
    else:
        code = getattr(outcome, "exit_code", getattr(outcome, "returncode", None))
        assert code == 1, f"exit {code}; stderr: {outcome.stderr!r}"
        exception = getattr(outcome, "exception", None)
        assert exception is None or isinstance(exception, SystemExit), repr(exception)
        stderr = outcome.stderr
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert after_log or len(lines) == 1, stderr
    for part in parts:
        assert part in errors[0], (part, errors[0])
    return errors[0]


def tiny_model_config(**overrides: object):
    """A 2+2-layer, d=32 ModelConfig for layer and search tests (no dropout)."""
    from mt_cli.core.config import ModelConfig

    base = dict(encoder_layers=2, decoder_layers=2, hidden_dim=32, num_heads=4, ffn_dim=64,
                dropout=0.0, attention_dropout=0.0, ffn_dropout=0.0, max_length=32)
    return ModelConfig(**{**base, **overrides})


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def checkpoint_arrays(step_dir: Path) -> dict[str, object]:
    """Every tensor of a training checkpoint but the step counters and dropout RNG state
    (weights, optimizer slots and the optimizer's iteration count), by name."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(step_dir / "ckpt"))
    skip = ("step/", "save_counter/", "rng/", "_CHECKPOINTABLE_OBJECT_GRAPH")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(skip)}


def assert_same_checkpoint_state(a: Path, b: Path) -> None:
    """Checkpoints `a` and `b` hold the same weights, slots and iteration count, all finite."""
    import numpy as np

    x, y = checkpoint_arrays(a), checkpoint_arrays(b)
    assert x.keys() == y.keys()
    assert any("iteration" in name for name in x), sorted(x)
    for name in x:
        np.testing.assert_array_equal(x[name], y[name], err_msg=name)
        if np.issubdtype(np.asarray(y[name]).dtype, np.floating):
            assert np.isfinite(y[name]).all(), name


def random_model_dir(root: Path, toy_dir: Path, name: str, norm: str = "pre", joint: bool = True,
                     share: str = "all", activation: str = "relu", pairs: tuple[tuple[str, str], ...] = ()) -> Path:
    """A model directory with seeded random weights (and its own tokenizer): parity needs no
    training. `pairs` (several targets): their tags in the vocabulary and the manifest."""
    import keras

    from mt_cli.core.config_loading import load_config
    from mt_cli.core.languages import Languages
    from mt_cli.core.tokenizer import Tokenizers, train_tokenizers
    from mt_cli.engines.model_dir import write_model_dir
    from mt_cli.model import build_model

    sources, targets = [toy_dir / "train.src"], [toy_dir / "train.tgt"]
    languages = Languages(pairs) if pairs else None
    tags = languages.tags() if languages else []
    paths = train_tokenizers(sources, targets, root / f"{name}-spm", joint=joint, vocab_size=32,
                             user_defined_symbols=tags)
    tokenizers = Tokenizers.load(*paths)
    overrides = [f"model.norm={norm}", f"model.share_embeddings={share}", f"model.activation={activation}",
                 "model.encoder_layers=2", "model.decoder_layers=2", "model.hidden_dim=32",
                 "model.num_heads=4", "model.ffn_dim=64", "model.max_length=48",
                 f"tokenizer.joint={str(joint).lower()}", "decode.max_length_b=6", "decode.max_length_a=1.0",
                 # Exact parity with the float32 conversion needs float32 on both sides, whatever the CPU.
                 "decode.dtype=float32"]
    cfg = load_config(None, overrides)
    keras.utils.set_random_seed(len(name))
    model = build_model(cfg.model, tokenizers.source.vocab_size, tokenizers.target.vocab_size)
    model.set_weights([w * 4.0 for w in model.get_weights()])  # sharper: varied outputs, few near-ties
    out = root / name
    info = {"step": 0, "weights_from": {"last_step": 0}}
    write_model_dir(out, model, cfg, tokenizers, {**info, **({"languages": languages.to_manifest()} if pairs else {})})
    return out


def sharp_random_model(seed: int, vocab: int = 24):
    """A tiny untied random Transformer with weights scaled x3 (sharper distributions, few
    near-ties), for search tests that compare decodings."""
    import dataclasses

    import keras

    from mt_cli.model import build_model

    keras.utils.set_random_seed(seed)
    cfg = dataclasses.replace(tiny_model_config(num_heads=2, max_length=40), share_embeddings="none")
    model = build_model(cfg, vocab, vocab)
    model.set_weights([w * 3.0 for w in model.get_weights()])
    return model


def random_source_batch(seed: int, count: int, vocab: int = 24):
    """[count, S] int32 source ids (1-7 random tokens + eos 3, 0-padded)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = [rng.integers(4, vocab, size=rng.integers(1, 8)).tolist() + [3] for _ in range(count)]
    out = np.zeros([count, max(map(len, rows))], np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def greedy_by_recomputation(next_scores, max_len: int) -> list[int]:
    """Reference greedy decoding: `next_scores(prefix)` gives the scores [V] of the token after
    bos + prefix from a full pass; pad (0) and bos (2) are banned, eos (3) stops."""
    import numpy as np

    out: list[int] = []
    while len(out) < max_len:
        scores = np.array(next_scores(out), np.float64)
        scores[[0, 2]] = -np.inf
        token = int(np.argmax(scores))
        if token == 3:
            break
        out.append(token)
    return out


@contextmanager
def small_tmpfs(directory: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` KB mounted at `directory`: a real full disk. Skips the test (saying
    why) where mounting is not permitted (not root, a container without CAP_SYS_ADMIN);
    always unmounted afterwards."""
    import pytest

    directory.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(directory)],
                                 capture_output=True, text=True, check=False)
    except OSError as exc:
        pytest.skip(f"cannot run mount to make a small tmpfs ({exc})")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a small tmpfs is not permitted here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True, check=False)


def run_with_terminal_stderr(argv: list[str], env: dict[str, str], stdin: Path | None = None,
                             timeout: float = 300) -> tuple[int, str]:
    """Run `argv` with stderr on a pseudo-terminal (stdin from a file or /dev/null, stdout a
    pipe, dropped): its exit code and everything the terminal received."""
    import os
    import pty

    master, slave = pty.openpty()
    with open(stdin or os.devnull, "rb") as feed:
        proc = subprocess.Popen(argv, stdin=feed, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    received = b""
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            received += data
    finally:
        os.close(master)
        code = proc.wait(timeout=timeout)
    return code, received.decode("utf-8", "replace")


def alias_bomb(levels: int, leaf: str = "x") -> str:
    """`levels` anchors, each a list of nine aliases of the one before: 9**levels values from a
    few hundred bytes (a "billion laughs"), as one YAML flow value."""
    parts = [f"&a0 [{', '.join([leaf] * 9)}]"]
    parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"[{', '.join(parts)}]"

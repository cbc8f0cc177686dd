"""The run directory contract: create it, refuse to resume a changed model, find or train
the tokenizer once, and never overwrite a finished run without being asked."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mt_cli.core.config import CONFIG_FILE, Config
from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import CheckpointError
from mt_cli.core.languages import training_symbols
from mt_cli.core.pair_filter import write_kept_pairs
from mt_cli.core.tokenizer import Tokenizers, check_symbols, train_tokenizers
from mt_cli.training.run_lock import LOCK_FILE

if TYPE_CHECKING:
    from mt_cli.training.data import Cleaning

log = logging.getLogger("mt_cli")
FINISHED_FILE = "finished.json"


def _compare_sections(old: Config, new: Config) -> list[str]:
    """Differences that make a checkpoint unusable (model shape, vocabulary)."""
    diffs = []
    for section in ("model", "tokenizer"):
        a, b = getattr(old, section), getattr(new, section)
        for f in dataclasses.fields(a):
            if section == "tokenizer" and f.name in ("model", "target_model", "input_sentence_size"):
                continue
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if va != vb:
                diffs.append(f"{section}.{f.name}: {va!r} -> {vb!r}")
    return diffs


def prepare_run_dir(cfg: Config, run_dir: Path, overwrite: bool) -> dict[str, Any] | None:
    """Create, resume-check or wipe the run directory.

    Returns the finished.json record of a finished run (then config.yaml is left alone:
    the caller writes it with `write_run_config` only if the run continues), else None.
    """
    saved = run_dir / CONFIG_FILE
    if overwrite and run_dir.exists():
        clear_run_dir(run_dir)
    if saved.is_file():
        old = load_config(saved)
        diffs = _compare_sections(old, cfg)
        if diffs:
            raise CheckpointError(
                f"{run_dir}: cannot resume, the model or tokenizer changed ({'; '.join(diffs)}); "
                "use a new --run-dir or --overwrite")
    elif run_dir.exists() and any(run_dir.iterdir()):
        if (run_dir / "checkpoints").exists() or (run_dir / "export").exists():
            raise CheckpointError(f"{run_dir}: holds checkpoints but no config.yaml; "
                                  "use --overwrite or another --run-dir")
    done = read_finished(run_dir)
    if done is None:
        write_run_config(cfg, run_dir)
    return done


def clear_run_dir(run_dir: Path) -> None:
    """--overwrite: empty the run directory but keep its lock file, which this process holds
    (a new file would let another `train` lock it alongside)."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def write_run_config(cfg: Config, run_dir: Path) -> None:
    """RUN/config.yaml, the config this run trains with (temp file + rename)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_FILE, cfg.to_yaml())
    except OSError as exc:
        raise CheckpointError(f"{run_dir}: cannot write the run directory ({exc.strerror})") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file via temp file + rename, so a crash never leaves half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_finished(run_dir: Path) -> dict[str, Any] | None:
    """RUN/finished.json, or None; an unreadable one (an older mt-cli wrote it in place) is
    set aside with a warning and the run resumes from its checkpoints."""
    path = run_dir / FINISHED_FILE
    if not path.is_file():
        return None
    try:
        done = json.loads(path.read_text())
        if not isinstance(done, dict):
            raise TypeError(f"expected an object, got {type(done).__name__}")
        return done
    except (OSError, ValueError, TypeError) as exc:
        log.warning(f"{path}: unreadable ({str(exc)[:120]}); treating the run as unfinished "
                    "and resuming from its checkpoints")
        path.unlink(missing_ok=True)
        return None


TOKENIZER_RECORD = "tokenizer.sha256.json"


def check_tokenizers(run_dir: Path, tokenizers: Tokenizers, action: str = "resume") -> None:
    """Refuse to resume (or `average`) with SentencePiece model(s) other than the ones the
    run started with.

    The first start records their sha256 in the run; a resume compares before any step,
    so checkpoints trained on another vocabulary are never touched. Only a resume records.
    """
    now = {"source": (str(tokenizers.source.path), tokenizers.source.sha256()),
           "target": (str(tokenizers.target.path), tokenizers.target.sha256())}
    record = run_dir / TOKENIZER_RECORD
    if record.is_file():
        try:
            before = json.loads(record.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{record}: unreadable ({exc}); use --overwrite to start again") from None
        changed = [f"{side} {now[side][0]} has sha256 {now[side][1][:12]}…, the run was started with "
                   f"{before[side]['path']} (sha256 {before[side]['sha256'][:12]}…)"
                   for side in (("source",) if tokenizers.joint else ("source", "target"))
                   if side in before and before[side].get("sha256") != now[side][1]]
        if changed:
            fix = ("set tokenizer.model back, or use a new --run-dir or --overwrite" if action == "resume"
                   else "put back the SentencePiece model the run trained with")
            raise CheckpointError(
                f"{run_dir}: cannot {action} with another SentencePiece model: {'; '.join(changed)}; {fix}")
        return
    if action != "resume":
        log.warning(f"{record}: missing (a run of an older mt-cli); the SentencePiece model cannot be "
                    "checked against the one the run trained with")
        return
    try:
        atomic_write_text(record, json.dumps({side: {"path": p, "sha256": h} for side, (p, h) in now.items()},
                                             indent=1))
    except OSError as exc:
        raise CheckpointError(f"{record}: cannot write ({exc.strerror})") from None


def existing_tokenizers(cfg: Config, run_dir: Path) -> Tokenizers | None:
    """The configured SentencePiece model(s), or those trained into the run earlier."""
    tok = cfg.tokenizer
    if tok.model:
        return Tokenizers.load(tok.model, tok.target_model)
    joint_path = run_dir / "spm.model"
    src_path, tgt_path = run_dir / "spm.src.model", run_dir / "spm.tgt.model"
    if tok.joint and joint_path.is_file():
        return Tokenizers.load(joint_path)
    if not tok.joint and src_path.is_file() and tgt_path.is_file():
        return Tokenizers.load(src_path, tgt_path)
    return None


def run_tokenizers(cfg: Config, run_dir: Path, cleanings: Sequence[Cleaning | None] = ()) -> Tokenizers:
    """Use the configured SentencePiece model(s), or train them once into the run; the tags
    the data needs must be user-defined pieces of the source model. With `cleanings` (data.clean,
    per training corpus) the model learns from the pairs cleaning keeps, not from the raw files."""
    found = existing_tokenizers(cfg, run_dir)
    if found is not None:
        check_symbols(found.source, training_symbols(cfg.data, cfg.tokenizer),
                      "tokenizer.model" if cfg.tokenizer.model else str(run_dir))
        return found
    tok = cfg.tokenizer
    log.info("training the SentencePiece model (tokenizer.model is not set)")
    with tempfile.TemporaryDirectory(prefix=".spm-input-", dir=run_dir) as scratch:
        files = _tokenizer_inputs(cfg, cleanings, Path(scratch))
        paths = train_tokenizers(
            [s for s, _ in files], [t for _, t in files], run_dir / "spm",
            joint=tok.joint, vocab_size=tok.vocab_size, model_type=tok.model_type,
            character_coverage=tok.character_coverage, input_sentence_size=tok.input_sentence_size,
            lenient_utf8=cfg.data.lenient_utf8, user_defined_symbols=training_symbols(cfg.data, tok))
    return Tokenizers.load(*paths)


def _tokenizer_inputs(cfg: Config, cleanings: Sequence[Cleaning | None],
                      scratch: Path) -> list[tuple[str | Path, str | Path]]:
    """Per training corpus, the (source, target) files SentencePiece learns from: the corpus
    itself, or its pairs that data.clean keeps, written into `scratch` (removed after)."""
    files: list[tuple[str | Path, str | Path]] = []
    for index, (corpus, cleaning) in enumerate(zip(cfg.data.train, cleanings or [None] * len(cfg.data.train))):
        if cleaning is None:
            files.append((corpus.source, corpus.target))
            continue
        kept = (scratch / f"{index}.src", scratch / f"{index}.tgt")
        count = write_kept_pairs(corpus.source, corpus.target, cleaning.pair_filter(), cfg.data.lenient_utf8, *kept)
        if not count:  # nothing kept: encoding says so, naming the corpus, after the model is trained
            files.append((corpus.source, corpus.target))
            continue
        log.info(f"SentencePiece learns from the {count} pairs data.clean keeps of {corpus.source}")
        files.append(kept)
    return files



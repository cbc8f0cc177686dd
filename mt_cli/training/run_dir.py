"""The run directory contract: create it, refuse to resume a changed model, find or train
the tokenizer once, and never overwrite a finished run without being asked."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from mt_cli.config import Config, load_config
from mt_cli.errors import CheckpointError
from mt_cli.tokenizer import Tokenizers, train_tokenizers

log = logging.getLogger("mt_cli")


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


def prepare_run_dir(cfg: Config, run_dir: Path, overwrite: bool) -> bool:
    """Create, resume-check or wipe the run directory. Returns True when it was finished."""
    saved = run_dir / "config.yaml"
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    if saved.is_file():
        old = load_config(saved)
        diffs = _compare_sections(old, cfg)
        if diffs:
            raise CheckpointError(
                f"{run_dir}: cannot resume, the model or tokenizer changed ({'; '.join(diffs)}); "
                "use a new --run-dir or --overwrite")
    elif run_dir.exists() and any(run_dir.iterdir()):
        if (run_dir / "checkpoints").exists() or (run_dir / "export").exists():
            raise CheckpointError(f"{run_dir}: holds checkpoints but no config.yaml; use --overwrite or another --run-dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / f".config.yaml.{os.getpid()}.tmp"
        tmp.write_text(cfg.to_yaml())
        tmp.replace(saved)
    except OSError as exc:
        raise CheckpointError(f"{run_dir}: cannot write the run directory ({exc.strerror})") from None
    return (run_dir / "finished.json").is_file()


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


def run_tokenizers(cfg: Config, run_dir: Path) -> Tokenizers:
    """Use the configured SentencePiece model(s), or train them once into the run."""
    found = existing_tokenizers(cfg, run_dir)
    if found is not None:
        return found
    tok = cfg.tokenizer
    log.info("training the SentencePiece model (tokenizer.model is not set)")
    paths = train_tokenizers(
        [c.source for c in cfg.data.train], [c.target for c in cfg.data.train], run_dir / "spm",
        joint=tok.joint, vocab_size=tok.vocab_size, model_type=tok.model_type,
        character_coverage=tok.character_coverage, input_sentence_size=tok.input_sentence_size,
        lenient_utf8=cfg.data.lenient_utf8)
    return Tokenizers.load(*paths)



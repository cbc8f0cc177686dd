"""`train --init-from MODEL_DIR`: start a run from a model directory's weights and tokenizer.

Fine-tuning must not quietly become something else: the model section must match the
parent's (else the weights cannot fit), the parent's SentencePiece model(s) are copied into
the run (a new vocabulary would scramble every embedding), and the parent is recorded in
RUN/init_from.json so that a rerun resumes from the run's own checkpoints, never from the
parent again, and every export names the weights it grew from.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from mt_cli.core.config import CONFIG_FILE, Config, TokenizerConfig
from mt_cli.core.errors import CheckpointError, ConfigError
from mt_cli.engines.locate import (
    CTRANSLATE2,
    MANIFEST_FILE,
    checked_file,
    plain_name,
    resolve_model_dir,
)
from mt_cli.engines.model_dir import WEIGHTS_FILE, check_model_dir
from mt_cli.engines.opened import open_model_dir
from mt_cli.training.checkpoints import list_checkpoints
from mt_cli.training.run_dir import atomic_write_text

log = logging.getLogger("mt_cli")
RECORD_FILE = "init_from.json"
# Model keys that may differ from the parent: training settings that shape no weight.
FREE_MODEL_KEYS = ("dropout", "attention_dropout", "ffn_dropout")


@dataclass(frozen=True)
class Parent:
    """The model directory a run starts from, as recorded in RUN/init_from.json."""

    path: Path
    weights_sha256: str
    step: int | None
    tokenizer: TokenizerConfig  # the parent's section; model paths cleared (the files are copied)
    spm_files: dict[str, str]  # file name in the run -> file name in the parent

    def entry(self) -> dict[str, Any]:
        """What manifests record: where the weights came from and which bytes they were."""
        return {"path": str(self.path), "weights_sha256": self.weights_sha256, "step": self.step}

    def to_record(self) -> dict[str, Any]:
        return {**self.entry(), "tokenizer": dataclasses.asdict(self.tokenizer),
                "spm_files": self.spm_files}

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> Parent:
        return cls(Path(raw["path"]), raw["weights_sha256"], raw.get("step"),
                   TokenizerConfig(**{key: tuple(value) if isinstance(value, list) else value  # JSON: lists
                                      for key, value in raw["tokenizer"].items()}), dict(raw["spm_files"]))

    def schedule_offset(self, reset: bool) -> int:
        """Steps the learning-rate schedule starts at: 0 (warmup again) or the parent's step."""
        if reset:
            return 0
        if self.step is None:
            log.warning(f"{self.path / MANIFEST_FILE}: records no step; train.init_reset=false "
                        "has nothing to continue from, the schedule starts at step 0")
            return 0
        return int(self.step)

    def install(self, run_dir: Path) -> None:
        """Copy the parent's SentencePiece model(s) into the run and write the record, once."""
        for name, source in self.spm_files.items():
            if not (run_dir / name).is_file():
                path = self._checked(source)  # the hashes were checked by open_parent
                try:
                    shutil.copyfile(path, run_dir / name)
                except OSError as exc:
                    raise CheckpointError(f"--init-from {self.path}: cannot copy {source} into "
                                          f"{run_dir} ({exc.strerror})") from None
        record = run_dir / RECORD_FILE
        if not record.is_file():
            atomic_write_text(record, json.dumps(self.to_record(), indent=1))

    def load_weights(self, model: keras.Model) -> None:
        """Load the parent's float32 weights, refusing bytes other than those recorded."""
        weights = self._checked(WEIGHTS_FILE, self.weights_sha256,
                                "the parent's weights changed since this run started from them")
        try:
            model.load_weights(str(weights))
        except Exception as exc:  # noqa: BLE001 (h5py / keras raise various types)
            raise CheckpointError(f"{weights}: cannot load weights ({str(exc)[:200]})") from None
        log.info(f"initialised the weights from {self.path} (step {self.step})")

    def _checked(self, name: str, sha256: str | None = None, mismatch: str = "") -> Path:
        """A file of the parent, checked like every model directory's file before it is opened
        (it may have changed since open_parent, or since the run started)."""
        try:
            return checked_file(self.path, name, sha256, mismatch)
        except CheckpointError as exc:
            raise CheckpointError(f"--init-from {self.path}: {exc}") from None


def open_parent(path: Path) -> tuple[Parent, Config]:
    """Check a native model directory (files, hashes, format) and describe it."""
    if not Path(path).exists():
        raise CheckpointError(f"--init-from {path}: not found (give a model directory: a run's "
                              "export/ or what mt-cli export/average wrote)")
    directory = resolve_model_dir(path).resolve()
    if not os.path.lexists(directory / MANIFEST_FILE):  # a FIFO or directory is read_manifest's to name
        if (directory / "checkpoints").is_dir():
            raise CheckpointError(f"--init-from {path}: a run without an export yet; write one from its "
                                  f"checkpoints with `mt-cli average {path} --last 1 -o DIR` and give DIR")
        raise CheckpointError(f"--init-from {path}: no {MANIFEST_FILE}; not an mt-cli model directory "
                              "(give a run directory, its export/ or what mt-cli average wrote)")
    try:
        opened = open_model_dir(directory)
        if opened.engine == CTRANSLATE2:
            raise CheckpointError("a CTranslate2 export holds no TensorFlow weights to train; give "
                                  "the native model directory it was exported from")
        manifest, parent_cfg = check_model_dir(opened)
    except (CheckpointError, ConfigError) as exc:
        raise CheckpointError(f"--init-from {path}: {exc}") from None
    tok = manifest["tokenizer"]
    joint = tok["source"] == tok["target"]
    spm_files = {"spm.model": tok["source"]} if joint else {"spm.src.model": tok["source"],
                                                             "spm.tgt.model": tok["target"]}
    tokenizer = dataclasses.replace(parent_cfg.tokenizer, model=None, target_model=None, joint=joint)
    return Parent(directory, manifest["files_sha256"][WEIGHTS_FILE], manifest.get("step"), tokenizer,
                  spm_files), parent_cfg


def check_fits(cfg: Config, parent_cfg: Config, path: Path) -> None:
    """The config may fine-tune the parent: same model section, no tokenizer of its own."""
    diffs = [f"model.{f.name} {getattr(parent_cfg.model, f.name)!r} (model) vs "
             f"{getattr(cfg.model, f.name)!r} (config)"
             for f in dataclasses.fields(cfg.model)
             if f.name not in FREE_MODEL_KEYS and getattr(parent_cfg.model, f.name) != getattr(cfg.model, f.name)]
    if diffs:
        raise ConfigError(f"--init-from {path}: model section differs from the config: "
                          f"{'; '.join(diffs)}; set them to the model's values ({cfg.origin})")
    _no_own_tokenizer(cfg)


def _no_own_tokenizer(cfg: Config) -> None:
    for key in ("model", "target_model"):
        value = getattr(cfg.tokenizer, key)
        if value:
            raise ConfigError(f"tokenizer.{key}: {value} is set, but --init-from runs use the model "
                              f"directory's SentencePiece model(s); remove tokenizer.{key} ({cfg.origin})")


def read_record(run_dir: Path) -> Parent | None:
    """The parent recorded in RUN/init_from.json, or None for a run trained from scratch."""
    path = run_dir / RECORD_FILE
    if not path.is_file():
        return None
    try:
        parent = Parent.from_record(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: unreadable ({str(exc)[:120]}); use --overwrite to start "
                              "again") from None
    if not all(plain_name(name) for pair in parent.spm_files.items() for name in pair):
        raise CheckpointError(f"{path}: spm_files: names must be plain file names (no '/' or '..'); "
                              "use --overwrite to start again")
    return parent


def _refuse_started_run(run_dir: Path, parent: Parent, path: Path) -> None:
    """--init-from only starts a run: it never replaces a run's own checkpoints."""
    started = bool(list_checkpoints(run_dir / "checkpoints")) or (run_dir / "export").exists()
    before = read_record(run_dir)
    other = (run_dir / CONFIG_FILE).is_file() and (before is None or before.weights_sha256 != parent.weights_sha256)
    if started or other:
        what = ("has checkpoints" if started else
                "was started from scratch" if before is None else "was started from other weights")
        raise CheckpointError(f"--init-from {path}: {run_dir} {what}; use a new --run-dir (rerun "
                              "without --init-from to resume it, or --overwrite to start again)")


def plan(cfg: Config, run_dir: Path, init_from: Path | None, overwrite: bool) -> tuple[Config, Parent | None]:
    """The config this run trains with and its parent, if any; nothing is written yet.

    With --init-from the parent is checked; without it, a run started from a parent keeps
    its recorded tokenizer (and resumes from its own checkpoints, see Session.open)."""
    if init_from is not None:
        parent, parent_cfg = open_parent(init_from)
        check_fits(cfg, parent_cfg, init_from)
        if not overwrite:
            _refuse_started_run(run_dir, parent, init_from)
    else:
        parent = None if overwrite else read_record(run_dir)
        if parent is None:
            return cfg, None
        _no_own_tokenizer(cfg)
    return dataclasses.replace(cfg, tokenizer=parent.tokenizer), parent

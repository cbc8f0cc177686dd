"""A model directory opened once: where it is, its checked manifest, its config (with `--set`
overrides and typed decode flags applied, parsed once) and the files verified so far. The
engine choice, both engines, serve's /info and `attention` all take this one value, so that
nothing reads a manifest or parses a config a second time. Imports no TensorFlow (the choice
is made before TensorFlow starts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mt_cli.core.config import CONFIG_FILE, Config
from mt_cli.core.errors import CheckpointError
from mt_cli.core.languages import Languages
from mt_cli.core.tokenizer import Tokenizers
from mt_cli.engines.locate import (
    NATIVE,
    conversion_files,
    model_config,
    read_manifest,
    resolve_model_dir,
    verify_files,
    vocabulary_map_name,
)


@dataclass(frozen=True)
class ModelDir:
    """A model directory, opened by `open_model_dir`; `verify` adds the files an engine reads."""

    path: Path
    manifest: Mapping[str, Any]  # checked by read_manifest: types, hashes, plain names
    config: Config  # its config.yaml, checked (regular, inside, hashed) then parsed once
    verified: Mapping[str, Path] = field(default_factory=dict)  # name -> path, checked with its sha256

    @property
    def engine(self) -> str:
        """The engine that reads it: `ctranslate2` for a CTranslate2 export, else `native`."""
        return str(self.manifest.get("engine", NATIVE))

    @property
    def conversion(self) -> list[str] | None:
        """The files of its CTranslate2 conversion (all of an export's); None: it has none."""
        return conversion_files(dict(self.manifest))

    @property
    def vocabulary_map(self) -> str | None:
        """The CTranslate2 vocabulary map its manifest names (among the conversion's files)."""
        return vocabulary_map_name(self.manifest)

    @property
    def languages(self) -> Languages:
        """Its language pairs (the manifest's; a model without them: its config's one pair)."""
        data = self.config.data
        return Languages.from_manifest(self.manifest.get("languages"), str(self.path / "manifest.json"),
                                       (data.source_lang, data.target_lang))

    def verify(self, only: list[str] | None = None) -> ModelDir:
        """This directory with its files (or the `only` ones an engine reads, plus the
        tokenizers and the config) checked by `checked_file`, hashes included."""
        files = verify_files(self.path, dict(self.manifest), required=(CONFIG_FILE,), only=only)
        return replace(self, verified={**self.verified, **files})

    def file(self, name: str) -> Path:
        """A verified file's path: nothing is opened that `verify` has not checked."""
        if name not in self.verified:
            raise CheckpointError(f"{self.path / name}: opened before it was verified (a bug in mt-cli)")
        return self.verified[name]

    def tokenizers(self) -> Tokenizers:
        """Its SentencePiece model(s), from verified files."""
        tok = self.manifest["tokenizer"]
        target = None if tok["target"] == tok["source"] else self.file(tok["target"])
        return Tokenizers.load(self.file(tok["source"]), target)


def open_model_dir(model: str | Path | ModelDir, overrides: list[str] | None = None,
                   decode_flags: Mapping[str, Any] | None = None) -> ModelDir:
    """The model directory at `model` (a run directory: its export/) opened once: manifest read
    and checked, config parsed with `--set` overrides and typed decode flags; an already opened
    one is returned as it is (its config already has what it was opened with)."""
    if isinstance(model, ModelDir):
        return model
    directory = resolve_model_dir(model)
    manifest = read_manifest(directory)
    return ModelDir(directory, manifest, model_config(directory, manifest, overrides, decode_flags))

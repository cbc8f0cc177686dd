"""Export a native model directory as a CTranslate2-only directory (`mt-cli export --format
ctranslate2`): the conversion (mt_cli/engines/ct2_spec.py) at any quantization, the
SentencePiece model(s), the source model's config (decode defaults, limits), its vocabulary
map (vmap.txt) when it has one, and a manifest with the source model's hashes, the
quantization and the versions. Model directories hold a float32 conversion already; this
export is for a smaller or quantized copy that travels alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import ctranslate2

from mt_cli import __version__
from mt_cli.core.files import atomic_dir, file_sha256
from mt_cli.engines.ct2_spec import build_spec, pieces
from mt_cli.engines.locate import (
    CTRANSLATE2,
    MANIFEST_FILE,
    VMAP_FILE,
    VOCABULARY_MAP,
    model_name,
    vocabulary_map_name,
)
from mt_cli.engines.model_dir import CONFIG_FILE, LoadedModel, load_model_dir

FORMAT_VERSION = 1


def export_ctranslate2(model_dir: str | Path, output: Path, quantization: str = "float32") -> Path:
    """Convert a native model directory (or run) into a CTranslate2 directory at `output`."""
    loaded = load_model_dir(model_dir)
    tok = loaded.tokenizers
    spec = build_spec(loaded.model, loaded.config.model.activation, pieces(tok.source.processor),
                      pieces(tok.target.processor))
    spec.validate()
    spec.optimize(quantization=quantization)

    def build(tmp: Path) -> None:
        spec.save(str(tmp))
        names = _copy_tokenizers(loaded, tmp)
        shutil.copyfile(loaded.directory / CONFIG_FILE, tmp / CONFIG_FILE)
        vocabulary_map = vocabulary_map_name(loaded.manifest)
        if vocabulary_map is not None:  # verified with every listed file by load_model_dir
            shutil.copyfile(loaded.directory / vocabulary_map, tmp / vocabulary_map)
        manifest = _manifest(tmp, loaded, names, quantization)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))

    atomic_dir(output, build)
    return output


def _copy_tokenizers(loaded: LoadedModel, tmp: Path) -> tuple[str, str]:
    source, target = loaded.manifest["tokenizer"]["source"], loaded.manifest["tokenizer"]["target"]
    for name in {source, target}:
        shutil.copyfile(loaded.directory / name, tmp / name)
    return source, target


def _manifest(tmp: Path, loaded: LoadedModel, names: tuple[str, str], quantization: str) -> dict[str, Any]:
    files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    source_manifest = loaded.manifest
    return {
        "engine": CTRANSLATE2,
        "format_version": FORMAT_VERSION,
        "quantization": quantization,
        "versions": {"mt_cli": __version__, "ctranslate2": ctranslate2.__version__},
        "source_model": {"directory": model_name(loaded.directory), "files_sha256": source_manifest["files_sha256"],
                         "step": source_manifest.get("step"), "versions": source_manifest.get("versions")},
        "special_ids": source_manifest["special_ids"],
        "tokenizer": {"source": names[0], "target": names[1], "source_sha256": files[names[0]],
                      "target_sha256": files[names[1]]},
        "dev_scores": source_manifest.get("dev_scores", {}),
        **({"languages": source_manifest["languages"]} if "languages" in source_manifest else {}),
        **({VOCABULARY_MAP: VMAP_FILE} if VMAP_FILE in files else {}),
        "files_sha256": files,
    }

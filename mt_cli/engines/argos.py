"""Argos Translate packages (`mt-cli export --format argos`): one language pair of a model
directory as a `.argosmodel`, the zip Argos Translate installs (argostranslate 1.11's
package.py): one top-level folder holding `metadata.json`, `model/` (a CTranslate2 model),
`sentencepiece.model` and `README.md`.

Why the target tag goes into model/config.json: Argos encodes each sentence with the
SentencePiece model and hands the pieces to CTranslate2 as they are; it has no source prefix
(its `target_prefix` metadata forces the decoder's first tokens, where our tags were never
seen). A model with several target languages reads `<2xx>` before every source, so the
package's CTranslate2 config says `add_source_bos` with the tag as its `bos_token`
(`decoder_start_token` stays `<s>`): CTranslate2 then puts the tag first itself, and Argos's
plain calls read exactly the pieces mt-cli's own engine reads. One SentencePiece model serves
both sides in Argos, so a model with separate vocabularies is refused.

Imports no TensorFlow: the directory's own CTranslate2 conversion is packaged as it is; only
another quantization converts again (ct2_convert, imported then).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_cli import __version__
from mt_cli.core.config import CONFIG_FILE
from mt_cli.core.errors import CheckpointError, ConfigError
from mt_cli.core.files import TMP_PREFIX, disk_full_message, is_disk_full
from mt_cli.core.language_names import language_name
from mt_cli.core.languages import Languages, target_tag
from mt_cli.engines.locate import CTRANSLATE2, model_name
from mt_cli.engines.opened import ModelDir, open_model_dir

log = logging.getLogger("mt_cli")
SUFFIX = ".argosmodel"
ARGOS_VERSION = "1.11"  # the argostranslate release whose loader this layout was checked against
PACKAGE_VERSION = "1.0"
ARGOS_DECODING_LENGTH = 256  # Argos passes no max_decoding_length: CTranslate2's default
CT2_CONFIG = "config.json"
SCORE_NAMES = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER", "loss": "dev loss"}


@dataclass(frozen=True)
class ArgosPackage:
    """What was written: the file, its pair and the tag built into it (None: no tag)."""

    path: Path
    source: str
    target: str
    tag: str | None


def check_output(output: Path) -> None:
    """`-o` names the package file Argos installs: `NAME.argosmodel`, NAME its folder."""
    if output.suffix != SUFFIX or output.name == SUFFIX or output.name.startswith("."):
        raise ConfigError(f"-o: {output.name[:80]!r} must be a file name ending in {SUFFIX} "
                          f"(Argos Translate installs NAME{SUFFIX}), e.g. -o en_de{SUFFIX}")


def choose_pair(languages: Languages, pair: str | None) -> tuple[str, str]:
    """The (source, target) a package holds: `--pair SRC-TGT`, needed when there are several."""
    names = [f"{s}-{t}" for s, t in languages.pairs]
    if pair is None:
        if len(names) > 1:
            raise ConfigError(f"--pair: this model translates {', '.join(names)} and an Argos package holds "
                              f"one pair; give one (a package each: --pair {names[0]}, then --pair {names[1]}, ...)")
        return languages.pairs[0]
    if pair not in names:
        raise ConfigError(f"--pair: {pair[:40]!r} is not a pair of this model (it translates {', '.join(names)})")
    return languages.pairs[names.index(pair)]


def held_quantization(opened: ModelDir) -> str | None:
    """The quantization of the CTranslate2 files the directory holds (None: it holds none)."""
    if opened.engine == CTRANSLATE2:
        return str(opened.manifest.get("quantization", "float32"))
    section = opened.manifest.get(CTRANSLATE2)
    return str(section.get("quantization", "float32")) if section else None


def needs_conversion(opened: ModelDir, quantization: str) -> bool:
    """Whether `quantization` needs a new conversion (TensorFlow); a CTranslate2 export cannot."""
    held = held_quantization(opened)
    if held == quantization:
        return False
    if opened.engine == CTRANSLATE2:
        raise ConfigError(f"--quantization: {opened.path} is a CTranslate2 export in {held}; give --quantization "
                          f"{held}, or export the model directory it came from")
    return True


def export_argos(model: str | Path | ModelDir, output: Path, quantization: str = "float32",
                 pair: str | None = None) -> ArgosPackage:
    """Write the `.argosmodel` of one pair of `model` at `output`, whole or not at all."""
    check_output(output)
    opened = open_model_dir(model)
    source, target = choose_pair(opened.languages, pair)
    tok = opened.manifest["tokenizer"]
    if tok["source"] != tok["target"]:
        raise ConfigError(f"{opened.path}: separate source and target SentencePiece models ({tok['source']}, "
                          f"{tok['target']}); an Argos package holds one sentencepiece.model for both sides, so "
                          "only a model with a joint vocabulary (tokenizer.joint: true) can be packaged")
    _warn_positions(opened)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not needs_conversion(opened, quantization):
        return _package(opened, opened, output, (source, target), quantization)
    from mt_cli.engines.ct2_convert import export_ctranslate2

    work = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{output.name}-pid{os.getpid()}-", dir=output.parent))
    try:
        converted = open_model_dir(export_ctranslate2(opened.path, work / "ct2", quantization))
        return _package(converted, opened, output, (source, target), quantization)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _warn_positions(opened: ModelDir) -> None:
    """Argos lets CTranslate2 decode up to 256 tokens; past the model's position table
    CTranslate2 fails (mt-cli's own engines stop at the model's length)."""
    positions = opened.config.model.max_length
    if positions < ARGOS_DECODING_LENGTH:
        log.warning(f"model.max_length is {positions}: Argos Translate decodes up to {ARGOS_DECODING_LENGTH} "
                    f"tokens, so a sentence whose translation (or source) runs past {positions} pieces fails "
                    "there with CTranslate2's 'No position encodings' error")


def _package(files: ModelDir, described: ModelDir, output: Path, pair: tuple[str, str],
             quantization: str) -> ArgosPackage:
    """The zip of `files`'s CTranslate2 model and SentencePiece model, described by `described`."""
    tok = files.manifest["tokenizer"]["source"]
    # Argos never asks CTranslate2 for its vocabulary map: it would only slow the loading
    names = [n for n in files.conversion or [] if n not in (tok, CONFIG_FILE, files.vocabulary_map)]
    files = files.verify(names)
    tag = target_tag(pair[1]) if described.languages.tagged else None
    if tag is not None and tag not in files.tokenizers().source.unsplit_symbols():
        raise CheckpointError(f"{files.path / tok}: has no piece {tag}, the tag that asks this model for "
                              f"{pair[1]}; re-export the model")
    root = output.stem
    entries: list[tuple[str, Path | bytes]] = [
        (f"{root}/metadata.json", _json(metadata(*pair))),
        (f"{root}/README.md", readme(described, pair, quantization, tag).encode()),
        (f"{root}/sentencepiece.model", files.file(tok)),
    ]
    for name in names:
        content: Path | bytes = files.file(name)
        if name == CT2_CONFIG and tag is not None:
            content = _json(tagged_config(_read_json(files.file(name)), tag, files.file(name)))
        entries.append((f"{root}/model/{name}", content))
    write_zip(output, entries)
    return ArgosPackage(output, pair[0], pair[1], tag)


def metadata(source: str, target: str) -> dict[str, Any]:
    """metadata.json: what argostranslate's `load_metadata_from_json` reads (no target_prefix)."""
    return {"package_version": PACKAGE_VERSION, "argos_version": ARGOS_VERSION, "type": "translate",
            "from_code": source, "from_name": language_name(source),
            "to_code": target, "to_name": language_name(target), "links": []}


def tagged_config(config: object, tag: str, path: Path) -> dict[str, Any]:
    """CTranslate2's config.json reading `tag` before every source (its bos), the decoder
    still starting at the start token it had."""
    if not isinstance(config, dict) or config.get("add_source_bos"):
        raise CheckpointError(f"{path}: not a CTranslate2 config this export can add a source tag to; "
                              "re-export the model")
    start = config.get("decoder_start_token", config.get("bos_token", "<s>"))
    return {**config, "add_source_bos": True, "bos_token": tag, "decoder_start_token": start}


def readme(opened: ModelDir, pair: tuple[str, str], quantization: str, tag: str | None) -> str:
    """README.md: the pair, the model's dev scores, and how the package was made."""
    source, target = pair
    manifest = opened.manifest
    step = manifest.get("step", (manifest.get("source_model") or {}).get("step"))
    lines = [f"# {language_name(source)} → {language_name(target)} ({source} → {target})", "",
             f"Made by mt-cli {__version__} (`mt-cli export --format argos`) from the model "
             f"`{model_name(opened.path)}`" + (f", trained {step} steps" if isinstance(step, int) else "")
             + f"; CTranslate2 weights in {quantization}.", ""]
    lines += _scores(manifest.get("dev_scores"), opened.languages.tagged)
    lines += ["", "## How it translates", "",
              "- `model/`: the CTranslate2 model; `sentencepiece.model`: the SentencePiece model of both sides."]
    if tag is not None:
        targets = ", ".join(language_name(t) for t in opened.languages.targets)
        lines.append(f"- The model translates into {targets}: `model/config.json` "
                     f"puts the target tag `{tag}` before every source (`add_source_bos`, `bos_token`), so "
                     f"this package always writes {language_name(target)}.")
    lines.append("- No sentence boundary model is included: Argos Translate splits with its default.")
    return "\n".join(lines) + "\n"


def _scores(raw: object, tagged: bool) -> list[str]:
    """The dev scores as a table (numbers only: a manifest is trusted for nothing)."""
    found = raw if isinstance(raw, Mapping) else {}
    scores = {name: found[key] for key, name in SCORE_NAMES.items() if isinstance(found.get(key), (int, float))
              and not isinstance(found[key], bool) and math.isfinite(found[key])}
    if not scores:
        return ["No dev scores were recorded for this model."]
    where = (" (one of its pairs: the dev set's, which the model directory does not name)" if tagged else "")
    return ([f"Scores on the training run's dev set at export{where}:", "", "| metric | score |", "|---|---|"]
            + [f"| {name} | {value:.2f} |" for name, value in scores.items()])


def write_zip(output: Path, entries: list[tuple[str, Path | bytes]]) -> None:
    """The zip written beside `output` under a `.tmp-` name, then renamed: never half a package."""
    tmp = output.with_name(f"{TMP_PREFIX}{output.name}-pid{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in entries:
                if isinstance(content, Path):
                    archive.write(content, name)
                else:
                    archive.writestr(name, content)
        os.replace(tmp, output)
    except OSError as exc:
        reason = disk_full_message(output) if is_disk_full(exc) else f"{output}: cannot write ({exc.strerror or exc})"
        raise CheckpointError(reason) from None
    finally:
        tmp.unlink(missing_ok=True)


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        raise CheckpointError(f"{path}: unreadable as JSON; re-export the model") from None

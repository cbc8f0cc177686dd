"""The CTranslate2 vocabulary map a trained run's model directory carries (vmap.txt, built from
the training corpus at export): listed and hashed in the manifest, used by the CTranslate2
engine with `--vocabulary-map` (off by default: it makes a line depend on its batch), carried
by `export --format ctranslate2`, and refused when edited or not named by the manifest
(CTranslate2 would read it unasked). Real CTranslate2, on copies of the session's trained run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import assert_one_line_error, toy_pairs
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.files import file_sha256

LINES = "the cat sees the dog .\na big red ball .\n\nthe old man eats .\n"
KEPT = ["<unk>", "<s>", "</s>", "▁."]  # a restrictive map: outputs of "." and unk ("⁇") only
ALLOWED = {".", "⁇"}


def cli(*args: object, stdin: str = LINES) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def ok(result: object) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def manifest(model: Path) -> dict:
    return json.loads((model / "manifest.json").read_text())


def with_map(source: Path, dest: Path, text: str) -> Path:
    """A copy of `source` whose vmap.txt is `text`, re-hashed in its manifest: the directory an
    export with another map would be (valid, verifiable)."""
    model = Path(shutil.copytree(source, dest))
    (model / "vmap.txt").write_text(text, encoding="utf-8")
    document = manifest(model)
    document["files_sha256"]["vmap.txt"] = file_sha256(model / "vmap.txt")
    (model / "manifest.json").write_text(json.dumps(document))
    return model


def unlisted(model: Path) -> Path:
    """`model` with its manifest no longer naming vmap.txt (the file stays)."""
    document = manifest(model)
    section = document.get("ctranslate2", document)
    section.pop("vocabulary_map")
    if "files" in section:
        section["files"].remove("vmap.txt")
    del document["files_sha256"]["vmap.txt"]
    (model / "manifest.json").write_text(json.dumps(document))
    return model


def test_training_writes_the_map_listed_and_hashed(trained_run: Path) -> None:
    export = trained_run / "export"
    document = manifest(export)
    section = document["ctranslate2"]
    assert section["vocabulary_map"] == "vmap.txt" and "vmap.txt" in section["files"]
    assert document["files_sha256"]["vmap.txt"] == file_sha256(export / "vmap.txt")
    lines = (export / "vmap.txt").read_text(encoding="utf-8").splitlines()
    always = lines[0].split("\t")
    assert always[0] == "" and {"<unk>", "<s>", "</s>", "▁."} <= set(always[1].split(" "))
    assert all(line.count("\t") == 1 and line.split("\t")[0] for line in lines[1:])


def test_translation_uses_the_map_and_no_vocabulary_map_is_plain_ctranslate2(trained_run: Path,
                                                                            tmp_path: Path) -> None:
    restricted = with_map(trained_run / "export", tmp_path / "model", "\t" + " ".join(KEPT) + "\n")
    engine = ("--engine", "ctranslate2", "-b", "1")
    plain = ok(cli("translate", "-m", trained_run, *engine)).splitlines()  # off by default
    assert ok(cli("translate", "-m", trained_run, *engine, "--vocabulary-map")).splitlines() == plain  # all it needs
    assert ok(cli("translate", "-m", restricted, *engine)).splitlines() == plain
    limited = ok(cli("translate", "-m", restricted, *engine, "--vocabulary-map")).splitlines()
    assert limited != plain and len(limited) == len(plain) == 4 and limited[2] == ""
    assert all(set(line.split()) <= ALLOWED for line in limited)
    changed = ok(cli("translate", "-m", restricted, *engine, "--set", "decode.vocabulary_map=true"))
    assert changed.splitlines() == limited


def test_a_prefix_outside_the_map_is_still_forced(trained_run: Path, tmp_path: Path) -> None:
    """A batch with a target prefix is decoded without the map (see the next test), so a prefix
    of pieces the map does not list is forced and the rest of the line is the model's plain
    output; a line without a prefix, batched apart, keeps the map."""
    from mt_cli.engines.ctranslate2 import CT2Translator

    restricted = with_map(trained_run / "export", tmp_path / "model", "\t" + " ".join(KEPT) + "\n")
    translator = CT2Translator(restricted, ["decode.beam_size=1", "decode.vocabulary_map=true"])
    assert translator.vocabulary_map
    prefix = "taco seeso"  # "cat sees" in the toy target language: no candidate of this map
    assert not set(translator.tokenizers.target.encode_pieces([prefix])[0]) & set(KEPT)
    lines = ["the cat sees the dog .", "a big red ball ."]
    found = translator.translate_nbest(lines, prefixes=[prefix, ""])
    assert found[0][0].text.startswith(prefix)
    plain = CT2Translator(trained_run, ["decode.beam_size=1", "decode.vocabulary_map=false"])
    assert found[0][0].text == plain.translate_nbest(lines[:1], prefixes=[prefix])[0][0].text
    # the line without a prefix is in a batch of its own (its length limit differs): with the map
    assert found[1][0].text == translator.translate_nbest(lines[1:])[0][0].text


def test_prefixed_batches_one_after_another_keep_their_prefixes(trained_run: Path) -> None:
    """CTranslate2 4.x keeps where each piece stood among an earlier batch's candidates, so with
    the map a later prefixed batch was forced to other pieces, or raised an IndexError: batches
    with a prefix are decoded without it."""
    from mt_cli.engines.ctranslate2 import CT2Translator

    pairs = toy_pairs(24, seed=11)
    translator = CT2Translator(trained_run, ["decode.beam_size=1", "decode.vocabulary_map=true"])
    assert translator.vocabulary_map  # the premise: the map is there to be used
    for start in range(0, len(pairs), 4):
        batch = pairs[start:start + 4]
        prefixes = [" ".join(target.split()[:2]) for _, target in batch]
        found = translator.translate_nbest([source for source, _ in batch], prefixes=prefixes)
        assert [n[0].text[:len(p)] for n, p in zip(found, prefixes)] == prefixes


def test_an_edited_map_is_refused(trained_run: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(trained_run / "export", tmp_path / "model"))
    with open(model / "vmap.txt", "a", encoding="utf-8") as handle:
        handle.write("▁the\t▁.\n")
    assert_one_line_error(cli("translate", "-m", model, "--engine", "ctranslate2"),
                          str(model / "vmap.txt"), "sha256 does not match the manifest")


@pytest.mark.parametrize("kind", ["model directory", "ctranslate2 export"])
def test_a_map_the_manifest_does_not_name_is_refused_before_ctranslate2_loads(
        kind: str, trained_run: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source = trained_run / "export" if kind == "model directory" else request.getfixturevalue("ct2_model")
    model = unlisted(Path(shutil.copytree(source, tmp_path / "model")))
    error = assert_one_line_error(cli("translate", "-m", model), str(model / "vmap.txt"), "re-export")
    assert "not named by manifest.json" in error


def test_export_ctranslate2_carries_the_map(trained_run: Path, ct2_model: Path) -> None:
    from mt_cli.engines.ctranslate2 import CT2Translator

    document = manifest(ct2_model)
    assert document["vocabulary_map"] == "vmap.txt"
    assert (ct2_model / "vmap.txt").read_bytes() == (trained_run / "export" / "vmap.txt").read_bytes()
    assert document["files_sha256"]["vmap.txt"] == file_sha256(ct2_model / "vmap.txt")
    assert CT2Translator(ct2_model).vocabulary_map


def test_a_ctranslate2_export_naming_an_unhashed_map_is_refused(ct2_model: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(ct2_model, tmp_path / "model"))
    document = manifest(model)
    del document["files_sha256"]["vmap.txt"]
    (model / "manifest.json").write_text(json.dumps(document))
    assert_one_line_error(cli("translate", "-m", model), str(model / "manifest.json"),
                          "vocabulary_map: 'vmap.txt' is not listed in files_sha256")

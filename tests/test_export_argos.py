"""`export --format argos`: an Argos Translate package that Argos's own calls (SentencePiece
encode, CTranslate2 translate_batch, decode; argostranslate 1.11's apply_packaged_translation)
read exactly as mt-cli's CTranslate2 engine does: greedy output identical, a tagged model's tag
applied by the package itself, one pair per package, refusals in one line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error, random_model_dir
from typer.testing import CliRunner

from mt_cli.cli.main import app

# What argostranslate 1.11 passes to translate_batch, less the beam (ARGOS_BEAM_SIZE, 4 by default).
ARGOS_OPTIONS = dict(replace_unknowns=True, max_batch_size=32, batch_type="tokens", length_penalty=0.2,
                     return_scores=True, num_hypotheses=1)
TWO_TARGETS = (("en", "aa"), ("en", "bb"))


def cli(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(result: object) -> object:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def unzipped(package: Path, into: Path) -> Path:
    """The package's one top-level folder, extracted (as argostranslate's install_from_path does)."""
    with zipfile.ZipFile(package) as archive:
        archive.extractall(into)
    (folder,) = into.iterdir()
    return folder


def output_limit(model: Path) -> Callable[[int], int]:
    """mt-cli's output limit for a source of n pieces: a * (n + eos) + b, under the model's
    length. Argos sets none (CTranslate2 decodes up to 256), and the 60-step toy model never
    stops by itself: past its 128 positions CTranslate2 fails (export warns of it)."""
    config = yaml.safe_load((model / "export" / "config.yaml").read_text())
    a, b = config["decode"]["max_length_a"], config["decode"]["max_length_b"]
    return lambda n: max(math.floor(min(a * (n + 1) + b, config["model"]["max_length"] - 1)), 1)


def argos_pieces(folder: Path, lines: list[str], beam: int = 1,
                 limit: Callable[[int], int] | None = None) -> list[list[str]]:
    """Output pieces as Argos computes them, in float32 (ARGOS_COMPUTE_TYPE=default; Argos's
    own default `auto` is int8 on most CPUs); each line alone when a `limit` caps it."""
    import ctranslate2
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "sentencepiece.model"))
    translator = ctranslate2.Translator(str(folder / "model"), device="cpu", compute_type="default")
    sources = [processor.encode(line, out_type=str) for line in lines]
    if limit is None:
        return [r.hypotheses[0] for r in translator.translate_batch(sources, beam_size=beam, **ARGOS_OPTIONS)]
    return [translator.translate_batch([s], beam_size=beam, max_decoding_length=limit(len(s)),
                                       **ARGOS_OPTIONS)[0].hypotheses[0] for s in sources]


def argos_text(folder: Path, pieces: list[list[str]]) -> list[str]:
    """Argos's SentencePieceTokenizer.decode, then its leading-space strip."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "sentencepiece.model"))
    texts = [processor.decode_pieces(p).replace("▁", " ").replace("_", " ") for p in pieces]
    return [t[1:] if t.startswith(" ") else t for t in texts]


def _lines(toy_dir: Path) -> list[str]:
    return [line for line in (toy_dir / "test.src").read_text(encoding="utf-8").splitlines() if line]


def _mt_cli_greedy(model: Path, source: Path, *flags: str) -> list[str]:
    result = ok(cli("-q", "translate", "-m", model, source, "--engine", "ctranslate2", "--beam-size", "1",
                    *flags))  # Argos never uses the map (nor does translate by default)
    return result.stdout.splitlines()


def test_package_layout_and_greedy_output_as_mt_cli(trained_run: Path, toy_dir: Path, tmp_path: Path) -> None:
    package = tmp_path / "toy.argosmodel"
    said = ok(cli("export", "-m", trained_run, "-o", package, "--format", "argos")).stderr
    assert "wrote" in said and "src -> tgt" in said
    with zipfile.ZipFile(package) as archive:
        assert sorted(archive.namelist()) == [
            "toy/README.md", "toy/metadata.json", "toy/model/config.json", "toy/model/model.bin",
            "toy/model/shared_vocabulary.json", "toy/sentencepiece.model"]
    folder = unzipped(package, tmp_path / "unzipped")
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["from_code"] == "src" and metadata["to_code"] == "tgt" and metadata["type"] == "translate"
    assert {"package_version", "argos_version", "from_name", "to_name"} <= set(metadata)
    manifest = json.loads((trained_run / "export" / "manifest.json").read_text())
    assert f"| BLEU | {manifest['dev_scores']['bleu']:.2f} |" in (folder / "README.md").read_text()
    assert json.loads((folder / "model" / "config.json").read_text())["add_source_bos"] is False  # no tags
    lines = _lines(toy_dir)
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    argos = argos_text(folder, argos_pieces(folder, lines, limit=output_limit(trained_run)))
    assert argos == _mt_cli_greedy(trained_run, tmp_path / "in.txt")


def test_float32_package_from_the_conversion_starts_no_tensorflow(trained_run: Path, tmp_path: Path) -> None:
    script = ("import sys, runpy\nsys.argv = ['mt-cli', 'export', '-m', sys.argv[1], '-o', sys.argv[2], "
              "'--format', 'argos']\ntry:\n    runpy.run_module('mt_cli', run_name='__main__')\n"
              "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
              "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script, str(trained_run), str(tmp_path / "p.argosmodel")],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert zipfile.is_zipfile(tmp_path / "p.argosmodel")


def test_int8_package_is_converted_again(trained_run: Path, toy_dir: Path, tmp_path: Path) -> None:
    ok(cli("export", "-m", trained_run, "-o", tmp_path / "q.argosmodel", "--format", "argos", "--quantization", "int8"))
    folder = unzipped(tmp_path / "q.argosmodel", tmp_path / "q")
    native = (trained_run / "export" / "model.bin").stat().st_size
    assert (folder / "model" / "model.bin").stat().st_size < native / 2
    assert len(argos_pieces(folder, _lines(toy_dir), limit=output_limit(trained_run))) == len(_lines(toy_dir))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # the conversion is gone


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory, toy_dir: Path) -> Path:
    """A random-weight en->{aa,bb} model directory (tags in its vocabulary and manifest)."""
    return random_model_dir(tmp_path_factory.mktemp("tagged"), toy_dir, "tagged", pairs=TWO_TARGETS)


def test_a_tagged_package_puts_its_tag_before_every_source(tagged: Path, toy_dir: Path, tmp_path: Path) -> None:
    import ctranslate2
    import sentencepiece

    lines = _lines(toy_dir)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tagged / "spm.model"))
    plain = ctranslate2.Translator(str(tagged), device="cpu")
    outputs = {}
    for target in ("aa", "bb"):
        package = tmp_path / f"en_{target}.argosmodel"
        said = ok(cli("export", "-m", tagged, "-o", package, "--format", "argos", "--pair", f"en-{target}")).stderr
        assert f"target tag <2{target}>" in said
        folder = unzipped(package, tmp_path / target)
        config = json.loads((folder / "model" / "config.json").read_text())
        assert (config["add_source_bos"], config["bos_token"], config["decoder_start_token"]) == (
            True, f"<2{target}>", "<s>")
        assert "always writes bb" in (folder / "README.md").read_text() or target == "aa"
        # The same pieces mt-cli's CTranslate2 engine sends: the tag, the source, eos (capped
        # lengths: a random model does not stop by itself). Without Argos's replace_unknowns: an
        # <unk> output attending to the tag is replaced by the tag when it was sent as a piece,
        # by the next piece when CTranslate2 added it (mt-cli replaces no <unk>).
        for beam in (1, 4):
            args = dict(ARGOS_OPTIONS, beam_size=beam, max_decoding_length=12, replace_unknowns=False)
            tagged_by_hand = plain.translate_batch([[f"<2{target}>", *processor.encode(line, out_type=str)]
                                                    for line in lines], **args)
            packaged = ctranslate2.Translator(str(folder / "model"), device="cpu", compute_type="default")
            found = packaged.translate_batch([processor.encode(line, out_type=str) for line in lines], **args)
            assert [r.hypotheses for r in found] == [r.hypotheses for r in tagged_by_hand]
            assert [r.scores[0] for r in found] == pytest.approx([r.scores[0] for r in tagged_by_hand], abs=1e-5)
        outputs[target] = [r.hypotheses for r in found]
    assert outputs["aa"] != outputs["bb"]  # the tag is read


def test_one_pair_per_package_and_refusals(tagged: Path, trained_run: Path, ct2_model: Path, toy_dir: Path,
                                           tmp_path: Path) -> None:
    out = tmp_path / "x.argosmodel"
    assert_one_line_error(cli("export", "-m", tagged, "-o", out, "--format", "argos"),
                          "--pair", "en-aa, en-bb", "one pair")
    assert_one_line_error(cli("export", "-m", tagged, "-o", out, "--format", "argos", "--pair", "en-fr"),
                          "--pair", "'en-fr' is not a pair")
    assert_one_line_error(cli("export", "-m", trained_run, "-o", tmp_path / "x.zip", "--format", "argos"),
                          "-o", ".argosmodel")
    assert_one_line_error(cli("export", "-m", trained_run, "-o", tmp_path / "ct2", "--pair", "src-tgt"),
                          "--pair", "argos only")
    assert_one_line_error(cli("export", "-m", ct2_model, "-o", out, "--format", "argos", "--quantization", "int8"),
                          "--quantization", "CTranslate2 export in float32")
    separate = random_model_dir(tmp_path / "models", toy_dir, "separate", joint=False, share="none")
    assert_one_line_error(cli("export", "-m", separate, "-o", out, "--format", "argos"),
                          "separate source and target SentencePiece models", "tokenizer.joint")
    out.write_bytes(b"mine")
    assert_one_line_error(cli("export", "-m", trained_run, "-o", out, "--format", "argos"), "already exists")
    assert out.read_bytes() == b"mine" and sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [out.name]


# ---------------------------------------------------------------- argostranslate itself

# argostranslate's translate module imports stanza (PyTorch) and minisbd (onnxruntime) for
# sentence splitting: both are replaced by a splitter that keeps each line one sentence, and
# each translate_batch call (one line) gets mt-cli's output limit (output_limit), so the rest
# (install_from_path, Package, the installed-language graph, apply_packaged_translation, its
# tokenizer and decode) is Argos's own code.
_ARGOS = """
import json, math, sys, types
import ctranslate2
a, b, cap = json.loads(sys.argv[3])
class Capped(ctranslate2.Translator):
    def translate_batch(self, sources, **options):
        (source,) = sources
        limit = max(math.floor(min(a * (len(source) + 1) + b, cap)), 1)
        return super().translate_batch(sources, max_decoding_length=limit, **options)
ctranslate2.Translator = Capped
sys.modules["stanza"] = types.ModuleType("stanza")
minisbd = types.ModuleType("minisbd")
minisbd.models = types.SimpleNamespace(cache_dir="", list_models=lambda: [])
minisbd.SBDetect = lambda lang, use_gpu=False: types.SimpleNamespace(sentences=lambda text: [text])
sys.modules["minisbd"] = minisbd
from argostranslate import package, translate
package.install_from_path(sys.argv[1])
(installed,) = package.get_installed_packages()
translation = translate.get_translation_from_codes(installed.from_code, installed.to_code)
print(json.dumps([translation.translate(line) for line in json.loads(sys.argv[2])]))
"""


def test_argostranslate_installs_and_translates_the_package(trained_run: Path, toy_dir: Path,
                                                            tmp_path: Path) -> None:
    pytest.importorskip("argostranslate.package", reason="argostranslate (pip install --no-deps argostranslate)")
    package = tmp_path / "toy.argosmodel"
    ok(cli("export", "-m", trained_run, "-o", package, "--format", "argos"))
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
           "ARGOS_PACKAGES_DIR": str(home / "packages"), "ARGOS_BEAM_SIZE": "1", "ARGOS_COMPUTE_TYPE": "default"}
    lines = _lines(toy_dir)
    config = yaml.safe_load((trained_run / "export" / "config.yaml").read_text())
    limits = [config["decode"]["max_length_a"], config["decode"]["max_length_b"], config["model"]["max_length"] - 1]
    result = subprocess.run([sys.executable, "-c", _ARGOS, str(package), json.dumps(lines), json.dumps(limits)],
                            env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (home / "packages" / "toy" / "model" / "model.bin").is_file()
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert json.loads(result.stdout.splitlines()[-1]) == _mt_cli_greedy(trained_run, tmp_path / "in.txt")

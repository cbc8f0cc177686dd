"""Export and average: CTranslate2 exports decode like the native engine (greedy parity on
tiny models: pre/post-norm, joint/separate vocabularies, tied/untied output, relu/gelu),
translate/evaluate read them under the same contract, a SavedModel serves without mt-cli,
and averaging checkpoints means what it says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from helpers import assert_one_line_error, random_model_dir
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.extras import require
from mt_cli.engines.choice import open_translator

# float32: the engines agree token for token only in the same precision (the conversion is float32).
GREEDY = ["decode.beam_size=1", "decode.n_best=1", "decode.batch_size=1", "decode.dtype=float32"]
VARIANTS = {
    "pre-joint-tied-relu": dict(norm="pre", joint=True, share="all", activation="relu"),
    "post-joint-untied-gelu": dict(norm="post", joint=True, share="none", activation="gelu"),
    "pre-separate-target-gelu": dict(norm="pre", joint=False, share="target", activation="gelu"),
    "post-separate-untied-relu": dict(norm="post", joint=False, share="none", activation="relu"),
}


def cli(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(result: object) -> object:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory, toy_dir: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (native model dir, its CTranslate2 export)."""
    from mt_cli.engines.ct2_convert import export_ctranslate2

    root = tmp_path_factory.mktemp("variants")
    made = {}
    for name, options in VARIANTS.items():
        native = random_model_dir(root, toy_dir, name, **options)
        made[name] = (native, export_ctranslate2(native, root / f"{name}-ct2"))
    return made


def _sources(toy_dir: Path) -> list[str]:
    return (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_greedy_parity_on_random_models(variants: dict, toy_dir: Path, name: str) -> None:
    native_dir, ct2_dir = variants[name]
    lines = _sources(toy_dir)[:12] + [""]
    native = open_translator(native_dir, GREEDY).translate_nbest(lines)
    ct2 = open_translator(ct2_dir, GREEDY).translate_nbest(lines)
    assert [n[0].ids for n in ct2] == [n[0].ids for n in native]
    assert [n[0].text for n in ct2] == [n[0].text for n in native]


def test_greedy_parity_on_trained_model_with_batches(trained_run: Path, ct2_model: Path,
                                                     toy_dir: Path) -> None:
    lines = _sources(toy_dir)
    greedy = ["decode.beam_size=1", "decode.n_best=1"]
    native = open_translator(trained_run, greedy).translate(lines)
    assert open_translator(ct2_model, greedy).translate(lines) == native


def test_manifest_and_files(trained_run: Path, ct2_model: Path) -> None:
    manifest = json.loads((ct2_model / "manifest.json").read_text())
    source = json.loads((trained_run / "export" / "manifest.json").read_text())
    assert manifest["engine"] == "ctranslate2" and manifest["quantization"] == "float32"
    assert manifest["source_model"]["files_sha256"] == source["files_sha256"]
    assert {"model.bin", "config.yaml", "spm.model"} <= set(manifest["files_sha256"])
    assert manifest["versions"]["ctranslate2"]


def test_translate_contract_on_ct2(ct2_model: Path, tmp_path: Path, toy_dir: Path) -> None:
    lines = _sources(toy_dir)[:5]
    lines[2] = ""
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    text = ok(cli("translate", "-m", ct2_model, src)).stdout.split("\n")[:-1]
    assert len(text) == 5 and text[2] == ""
    records = [json.loads(x) for x in ok(cli("translate", "-m", ct2_model, src, "--format", "jsonl",
                                             "--n-best", "2", "--beam-size", "2")).stdout.splitlines()]
    assert [r["index"] for r in records] == list(range(5))
    assert all(len(r["nbest"]) == 2 for i, r in enumerate(records) if i != 2)
    nbest = ok(cli("translate", "-m", ct2_model, src, "--n-best", "2", "--beam-size", "2")).stdout
    assert [line.split(" ||| ")[0] for line in nbest.splitlines()] == list("001123344")  # empty: one
    prefixes = tmp_path / "prefix.txt"
    prefixes.write_text("".join((toy_dir / "test.tgt").read_text().splitlines()[i].split()[0] + "\n"
                                for i in range(5)))
    forced = ok(cli("translate", "-m", ct2_model, src, "--prefix-file", prefixes)).stdout.splitlines()
    wanted = prefixes.read_text().splitlines()
    assert all(out.startswith(p) for i, (out, p) in enumerate(zip(forced, wanted)) if i != 2)
    scored = ok(cli("translate", "-m", ct2_model, src, "--with-scores")).stdout.splitlines()
    assert all("\t" in line for line in scored)


def test_ct2_warns_for_unmatched_options(ct2_model: Path, toy_dir: Path) -> None:
    result = ok(cli("translate", "-m", ct2_model, toy_dir / "test.src", "--coverage-penalty", "0.2"))
    assert "CTranslate2's own coverage penalty" in result.stderr
    agreed = ok(cli("translate", "-m", ct2_model, toy_dir / "test.src", "--length-penalty", "1.0"))
    assert "warning" not in agreed.stderr  # GNMT's length penalty on both engines now: nothing to warn of


def test_ct2_refuses_native_only_options(ct2_model: Path, toy_dir: Path) -> None:
    assert_one_line_error(cli("translate", "-m", ct2_model, toy_dir / "test.src", "--shortlist", "50"),
                          "--shortlist", "native engine")


def test_sampling_on_ct2_is_reproducible(ct2_model: Path, toy_dir: Path) -> None:
    args = ("translate", "-m", ct2_model, toy_dir / "test.src", "--sampling-topk", "5", "--seed", "3")
    assert ok(cli(*args)).stdout == ok(cli(*args)).stdout


def test_evaluate_reads_ct2(ct2_model: Path, toy_dir: Path) -> None:
    """evaluate -m scores the CTranslate2 model's own translations (not another engine's)."""
    import sacrebleu

    result = ok(cli("evaluate", "-m", ct2_model, "-s", toy_dir / "test.src", "-r", toy_dir / "test.tgt",
                    "--json"))
    scores = json.loads(result.stdout)["systems"][0]["scores"]
    hyps = open_translator(ct2_model).translate(_sources(toy_dir))
    refs = (toy_dir / "test.tgt").read_text(encoding="utf-8").splitlines()
    assert scores["bleu"]["score"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
    assert scores["chrf"]["score"] == pytest.approx(chrf) and chrf > 0  # the tiny model's BLEU may be 0


def test_int8_export_translates(trained_run: Path, tmp_path: Path, toy_dir: Path) -> None:
    ok(cli("export", "-m", trained_run, "-o", tmp_path / "int8", "--quantization", "int8"))
    out = ok(cli("translate", "-m", tmp_path / "int8", toy_dir / "test.src")).stdout
    assert len(out.splitlines()) == len(_sources(toy_dir))


def test_export_refuses_existing_output_and_bad_options(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    assert_one_line_error(cli("export", "-m", trained_run, "-o", tmp_path / "taken"), "already exists")
    assert_one_line_error(cli("export", "-m", trained_run, "-o", tmp_path / "x", "--format", "onnx"),
                          "--format")
    assert_one_line_error(cli("export", "-m", trained_run, "-o", tmp_path / "x", "--quantization", "int4"),
                          "--quantization")


def test_missing_extra_names_it() -> None:
    with pytest.raises(Exception, match=r"pip install 'mt-cli\[ctranslate2\]'"):
        require("no_such_module_for_mt_cli", "ctranslate2", "mt-cli export --format ctranslate2")


def test_ct2_export_is_not_a_native_model_dir(ct2_model: Path, tmp_path: Path) -> None:
    assert_one_line_error(cli("export", "-m", ct2_model, "-o", tmp_path / "again"), "ctranslate2 export")


# ---------------------------------------------------------------- SavedModel

_LOAD_SAVEDMODEL = """
import json, sys
sys.modules["mt_cli"] = None  # mt-cli must not be needed to serve the model
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece ops of the text signature (as TF Serving has)
loaded = tf.saved_model.load(sys.argv[1])
ids = tf.constant(json.loads(sys.argv[2]), tf.int32)
out = loaded.signatures["serving_default"](source_ids=ids)
lengths = out["lengths"].numpy()[:, 0].tolist()
best = [row[0, :n].tolist() for row, n in zip(out["ids"].numpy(), lengths)]
text = loaded.signatures["translate_text"](text=tf.constant(json.loads(sys.argv[3])))
print(json.dumps({"ids": best, "text": [t.decode() for t in text["translation"].numpy()]}))
"""


def test_savedmodel_serves_without_mt_cli(trained_run: Path, tmp_path: Path, toy_dir: Path) -> None:
    from mt_cli.core.tokenizer import EOS_ID
    from mt_cli.engines.model_dir import load_model_dir
    from mt_cli.model.search import search

    ok(cli("export", "-m", trained_run, "-o", tmp_path / "sm", "--format", "savedmodel"))
    source = json.loads((tmp_path / "sm" / "manifest.json").read_text())["source_model"]
    assert source["directory"] == trained_run.name  # its name, never the path it was built from
    loaded = load_model_dir(trained_run)
    pytest.importorskip("tensorflow_text")
    rows = [ids + [EOS_ID] for ids in loaded.tokenizers.source.encode_ids(_sources(toy_dir)[:6])]
    padded = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for i, row in enumerate(rows):
        padded[i, :len(row)] = row
    lines = _sources(toy_dir)[:6]
    result = subprocess.run([sys.executable, "-c", _LOAD_SAVEDMODEL, str(tmp_path / "sm"),
                             json.dumps(padded.tolist()), json.dumps(lines)], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["ids"] == search(loaded.model, padded, loaded.config.decode).best()
    assert served["text"] == open_translator(trained_run).translate(lines)


# ---------------------------------------------------------------- average

def _checkpoint_arrays(prefix: str) -> dict[str, np.ndarray]:
    """The model weights of a training checkpoint (a variable is stored once, under the first
    path to it: the model's own, or the optimizer's list of trainable variables)."""
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/_trainable_variables/")) and k.endswith("VARIABLE_VALUE")}


def _export_arrays(directory: Path) -> list[np.ndarray]:
    import h5py

    arrays: list[np.ndarray] = []
    with h5py.File(directory / "model.weights.h5") as handle:
        handle.visititems(lambda name, obj: arrays.append(np.array(obj)) if hasattr(obj, "shape") else None)
    return arrays


def _matches(arrays: list[np.ndarray], expected: list[np.ndarray]) -> bool:
    remaining = list(expected)
    for array in arrays:
        hit = next((i for i, e in enumerate(remaining) if e.shape == array.shape
                    and np.allclose(e, array, atol=1e-6)), None)
        if hit is None:
            return False
        remaining.pop(hit)
    return not remaining


def test_average_of_one_is_it_and_of_two_is_the_mean(trained_run: Path, tmp_path: Path) -> None:
    steps = sorted(int(p.name.split("-")[1]) for p in (trained_run / "checkpoints").glob("step-*"))
    a, b = steps[-2], steps[-1]
    ckpt = lambda s: str(trained_run / "checkpoints" / f"step-{s:08d}" / "ckpt")
    ok(cli("average", trained_run, "--steps", b, "-o", tmp_path / "one"))
    assert _matches(_export_arrays(tmp_path / "one"), list(_checkpoint_arrays(ckpt(b)).values()))
    ok(cli("average", trained_run, "--last", 2, "-o", tmp_path / "two"))
    first, second = _checkpoint_arrays(ckpt(a)), _checkpoint_arrays(ckpt(b))
    means = [(first[k] + second[k]) / 2 for k in first]
    assert _matches(_export_arrays(tmp_path / "two"), means)
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["weights_from"] == {"averaged_steps": [a, b]}


def test_average_errors(trained_run: Path, tmp_path: Path) -> None:
    assert_one_line_error(cli("average", trained_run, "--steps", "7", "-o", tmp_path / "x"),
                          "no checkpoint for step(s) 7", "available")
    assert_one_line_error(cli("average", trained_run, "--last", "99", "-o", tmp_path / "x"), "--last 99")
    assert_one_line_error(cli("average", trained_run, "-o", tmp_path / "x"), "--last K or --steps")


def test_loading_a_model_directory_parses_its_config_once(trained_run: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The export is checked and loaded from one parse of its config.yaml, overrides applied."""
    from mt_cli.engines import locate, model_dir

    parsed: list[tuple] = []
    real = locate.load_config  # model_config: the one reader of a model directory's config.yaml

    def counted(*args: object, **kwargs: object) -> object:
        parsed.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(locate, "load_config", counted)
    loaded = model_dir.load_model_dir(trained_run, ["decode.beam_size=3"], decode_flags={"n_best": 2})
    assert len(parsed) == 1, parsed
    assert (loaded.config.decode.beam_size, loaded.config.decode.n_best) == (3, 2)


def test_average_refuses_a_swapped_sentencepiece_model(trained_run: Path, tmp_path: Path, toy_dir: Path) -> None:
    """As a resume does: checkpoints trained on one vocabulary are not packaged with another."""
    import shutil

    from mt_cli.core.tokenizer import train_sentencepiece

    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    other = train_sentencepiece([toy_dir / "train.src", toy_dir / "train.tgt"], tmp_path / "b", 48, model_type="bpe")
    shutil.copyfile(other, run / "spm.model")
    assert_one_line_error(cli("average", run, "--last", 1, "-o", tmp_path / "avg"),
                          "cannot average with another SentencePiece model", str(run / "spm.model"))
    assert not (tmp_path / "avg").exists()


def test_average_of_a_truncated_checkpoint_or_an_edited_config_is_one_error(trained_run: Path,
                                                                            tmp_path: Path) -> None:
    import shutil

    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    last = sorted((run / "checkpoints").glob("step-*"))[-1]
    data = next(last.glob("ckpt.data-*"))
    data.write_bytes(data.read_bytes()[:3])
    assert_one_line_error(cli("average", run, "--last", 1, "-o", tmp_path / "a"), "cannot be read into the model",
                          "a checkpoint is damaged")
    edited = Path(shutil.copytree(trained_run, tmp_path / "edited"))
    config = edited / "config.yaml"
    config.write_text(config.read_text().replace("ffn_dim: 64", "ffn_dim: 96"))
    assert_one_line_error(cli("average", edited, "--last", 1, "-o", tmp_path / "b"),
                          "model.ffn_dim is 96 but the run was trained with 64")
    shutil.rmtree(edited / "export")  # no export to compare with: the checkpoints themselves refuse
    assert_one_line_error(cli("average", edited, "--last", 1, "-o", tmp_path / "b"), str(config),
                          "cannot be read into the model")
    same_shapes = Path(shutil.copytree(trained_run, tmp_path / "same-shapes"))
    config = same_shapes / "config.yaml"
    assert "activation: relu" in config.read_text()
    config.write_text(config.read_text().replace("activation: relu", "activation: gelu"))
    assert_one_line_error(cli("average", same_shapes, "--last", 1, "-o", tmp_path / "c"),
                          "model.activation is 'gelu' but the run was trained with 'relu'")
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


@pytest.mark.parametrize("steps", [",", " , ,"])
def test_average_steps_without_a_number_is_one_error(trained_run: Path, tmp_path: Path, steps: str) -> None:
    assert_one_line_error(cli("average", trained_run, "--steps", steps, "-o", tmp_path / "x"),
                          "--steps: no step number")


def test_average_carries_the_runs_vocabulary_map_and_checks_its_conversion(trained_run: Path, tmp_path: Path) -> None:
    """An averaged directory is a full model directory: the run's vmap.txt (named and hashed in
    its manifest) and the dev check `compute_type: auto` reads; a damaged map in the run's export
    is left out with a warning, and the average is still written."""
    ok(cli("average", trained_run, "--last", 2, "-o", tmp_path / "avg"))
    section = json.loads((tmp_path / "avg" / "manifest.json").read_text())["ctranslate2"]
    assert section["vocabulary_map"] == "vmap.txt"
    assert (tmp_path / "avg" / "vmap.txt").read_bytes() == (trained_run / "export" / "vmap.txt").read_bytes()
    check = section["dev_check"]
    assert check["lines"] > 0 and {"float32", "int8"} <= set(check["bleu"])
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    with (run / "export" / "vmap.txt").open("a", encoding="utf-8") as vmap:
        vmap.write("edited\tby hand\n")
    result = cli("average", run, "--last", 1, "-o", tmp_path / "avg2")
    assert result.exit_code == 0, result.stderr
    assert "gets no vocabulary map" in result.stderr and "vmap.txt" in result.stderr
    section = json.loads((tmp_path / "avg2" / "manifest.json").read_text())["ctranslate2"]
    assert "vocabulary_map" not in section and not (tmp_path / "avg2" / "vmap.txt").exists()
    config = run / "config.yaml"  # a dev set moved away since training: no dev check, a warning
    dev_source = yaml.safe_load(config.read_text())["data"]["dev"]["source"]
    config.write_text(config.read_text().replace(dev_source, str(tmp_path / "moved.src")))
    result = cli("average", run, "--last", 1, "-o", tmp_path / "avg3")
    assert result.exit_code == 0, result.stderr
    assert "gets no dev check" in result.stderr and "moved.src" in result.stderr
    assert "dev_check" not in json.loads((tmp_path / "avg3" / "manifest.json").read_text())["ctranslate2"]

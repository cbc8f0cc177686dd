"""`mt-cli train --init-from MODEL_DIR`: fine-tuning from a model directory, through the real
CLI. A tiny parent learns the toy language; a shifted domain (the translations of four words
swapped, something the parent cannot know) is then learnt by a short fine-tune, which must
start from the parent's weights and tokenizer, record the parent, and resume on its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error, tiny_config_text, toy_pairs, write_pairs
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.files import file_sha256

# Word pieces (every toy word one token) let the tiny model learn the toy language in ~150
# steps; 45 = 4 special ids + 20 source words + 20 target words + ".".
WORD_TOKENIZER = {"vocab_size": 45, "model_type": "word"}
# The shifted domain: the targets of cat/dog and red/blue are swapped.
_SWAP = {"cat": "dog", "dog": "cat", "red": "blue", "blue": "red"}
_TARGET = {w[::-1] + "o": v[::-1] + "o" for w, v in _SWAP.items()}
FINETUNE_STEPS = 20


def _cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _metrics(run: Path) -> list[dict]:
    rows = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return [r for r in rows if r["event"] == "train"]


def _bleu(model: Path, data: Path) -> float:
    result = _ok(_cli("evaluate", "-m", model, "-s", data / "test.src", "-r", data / "test.tgt",
                      "--json", "--metrics", "bleu"))
    return json.loads(result.stdout)["systems"][0]["scores"]["bleu"]["score"]


def _config(path: Path, data: Path, **sections: dict) -> Path:
    sections = {"decode": {"beam_size": 1}, **sections}
    path.write_text(tiny_config_text(data, **sections))
    return path


@pytest.fixture(scope="module")
def parent(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that has learnt the toy language (its run directory); step 1's loss is
    logged, so its first record is a from-scratch run's first loss."""
    work = tmp_path_factory.mktemp("parent")
    config = _config(work / "parent.yaml", toy_dir, tokenizer=WORD_TOKENIZER,
                     train={"max_steps": 150, "batch_tokens": 1024, "schedule": "constant",
                            "learning_rate": 0.005, "warmup_steps": 20, "save_every": 150,
                            "eval_every": 1000, "log_every": 1})
    _ok(_cli("train", config, "--run-dir", work / "run"))
    return work / "run"


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shifted")
    for name, count, seed in (("train", 300, 11), ("dev", 10, 13), ("test", 40, 12)):
        pairs = [(s, " ".join(_TARGET.get(w, w) for w in t.split())) for s, t in toy_pairs(count, seed)]
        write_pairs(directory, name, pairs)
    return directory


@pytest.fixture(scope="module")
def finetuned(parent: Path, shifted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(run, config, stderr) of a short fine-tune on the shifted domain from a copy of the
    parent's export (the copy lets a test delete the parent afterwards)."""
    work = tmp_path_factory.mktemp("finetuned")
    source = shutil.copytree(parent / "export", work / "parent-export")
    config = _config(work / "ft.yaml", shifted,
                     train={"max_steps": FINETUNE_STEPS, "schedule": "constant", "learning_rate": 0.003,
                            "warmup_steps": 5, "save_every": 10, "eval_every": 1000, "log_every": 1})
    result = _ok(_cli("train", config, "--run-dir", work / "run", "--init-from", source))
    return work / "run", config, result.stderr


def test_finetuning_learns_the_shifted_domain_from_the_parents_weights(parent, shifted, finetuned,
                                                                     toy_dir) -> None:
    run, _, stderr = finetuned
    parent_bleu, tuned_bleu = _bleu(parent, shifted), _bleu(run, shifted)
    assert tuned_bleu > parent_bleu + 3.0, (parent_bleu, tuned_bleu)
    # what it gained is the shifted domain, not just more training on the toy language
    gain_elsewhere = _bleu(run, toy_dir) - _bleu(parent, toy_dir)
    assert tuned_bleu - parent_bleu > gain_elsewhere + 3.0, (parent_bleu, tuned_bleu, gain_elsewhere)
    scratch_first, tuned_first = _metrics(parent)[0], _metrics(run)[0]
    assert scratch_first["step"] == tuned_first["step"] == 1
    assert tuned_first["loss"] < 0.6 * scratch_first["loss"], (tuned_first, scratch_first)
    # the parent's tokenizer, not a new one
    assert "training the SentencePiece model" not in stderr
    assert file_sha256(run / "spm.model") == file_sha256(parent / "export" / "spm.model")
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["init_from"]["weights_sha256"] == file_sha256(parent / "export" / "model.weights.h5")
    assert manifest["init_from"]["step"] == 150
    assert Path(manifest["init_from"]["path"]).name == "parent-export"
    assert json.loads((run / "init_from.json").read_text())["weights_sha256"] == manifest["init_from"]["weights_sha256"]
    # a fresh schedule (train.init_reset: true): warmup again (the rate logged after step 1 is
    # the one for the optimizer's next iteration, the second of five warmup steps)
    assert _metrics(run)[0]["learning_rate"] == pytest.approx(0.003 * 2 / 5)


def test_resume_continues_from_the_runs_own_checkpoint(finetuned, tmp_path) -> None:
    run, config, _ = finetuned
    run = shutil.copytree(run, tmp_path / "run")
    source = Path(json.loads((run / "init_from.json").read_text())["path"])
    source.rename(tmp_path / "aside")  # the parent is gone: a resume must not need it
    try:
        result = _ok(_cli("train", config, "--run-dir", run, "--set", f"train.max_steps={FINETUNE_STEPS + 5}"))
    finally:
        (tmp_path / "aside").rename(source)
    assert "resuming from" in result.stderr and f"step {FINETUNE_STEPS}" in result.stderr
    assert "initialised the weights" not in result.stderr
    assert [r["step"] for r in _metrics(run)][FINETUNE_STEPS:] == list(range(FINETUNE_STEPS + 1, FINETUNE_STEPS + 6))
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["step"] == FINETUNE_STEPS + 5 and "weights_sha256" in manifest["init_from"]


def test_init_from_into_a_run_with_checkpoints_is_refused(parent, finetuned) -> None:
    run, config, _ = finetuned
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    result = _cli("train", config, "--run-dir", run, "--init-from", parent)
    assert_one_line_error(result, "--init-from", "has checkpoints", "use a new --run-dir")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_schedule_continues_from_the_parents_step_without_init_reset(parent, shifted, tmp_path) -> None:
    from mt_cli.training.schedules import make_schedule

    config = _config(tmp_path / "c.yaml", shifted, train={"max_steps": 1, "init_reset": False,
                                                          "eval_every": 1000, "log_every": 1})
    _ok(_cli("train", config, "--run-dir", tmp_path / "run", "--init-from", parent))
    cfg = yaml.safe_load(config.read_text())
    noam = make_schedule("noam", 2.0, 32, cfg["train"]["warmup_steps"])  # the tiny preset's values
    first = _metrics(tmp_path / "run")[0]["learning_rate"]  # logged for the optimizer's iteration 1
    assert first == pytest.approx(float(noam(150 + 1)))
    assert first != pytest.approx(float(noam(1)))


def test_model_section_differences_are_listed_in_one_line(parent, shifted, tmp_path) -> None:
    config = _config(tmp_path / "c.yaml", shifted, model={"hidden_dim": 64, "num_heads": 4})
    result = _cli("train", config, "--run-dir", tmp_path / "run", "--init-from", parent)
    line = assert_one_line_error(result, f"--init-from {parent}", "model section differs",
                                 "model.hidden_dim 32 (model) vs 64 (config)",
                                 "model.num_heads 2 (model) vs 4 (config)", "set them to the model's values")
    assert "dropout" not in line
    assert not (tmp_path / "run").exists()


def test_a_tokenizer_of_the_configs_own_is_refused(parent, shifted, tmp_path) -> None:
    config = _config(tmp_path / "c.yaml", shifted,
                     tokenizer={"model": str(parent / "export" / "spm.model")})
    result = _cli("train", config, "--run-dir", tmp_path / "run", "--init-from", parent)
    assert_one_line_error(result, "tokenizer.model", "remove tokenizer.model")


def test_separate_vocabularies_are_copied_and_used(toy_dir, tmp_path) -> None:
    parent_config = _config(tmp_path / "p.yaml", toy_dir, tokenizer={"joint": False, "vocab_size": 30},
                            model={"share_embeddings": "none"},
                            train={"max_steps": 2, "save_every": 2, "eval_every": 1000})
    _ok(_cli("train", parent_config, "--run-dir", tmp_path / "parent"))
    config = _config(tmp_path / "c.yaml", toy_dir, model={"share_embeddings": "none"},
                     train={"max_steps": 1, "eval_every": 1000})  # tokenizer: joint, 48 (ignored)
    result = _ok(_cli("train", config, "--run-dir", tmp_path / "run", "--init-from", tmp_path / "parent"))
    assert "training the SentencePiece model" not in result.stderr
    assert not (tmp_path / "run" / "spm.model").exists()
    for side in ("src", "tgt"):
        name = f"spm.{side}.model"
        assert file_sha256(tmp_path / "run" / name) == file_sha256(tmp_path / "parent" / "export" / name)
        assert file_sha256(tmp_path / "run" / "export" / name) == file_sha256(tmp_path / "run" / name)


def test_missing_or_non_model_directories_are_refused(parent, shifted, tmp_path) -> None:
    config = _config(tmp_path / "c.yaml", shifted)
    missing = _cli("train", config, "--run-dir", tmp_path / "r1", "--init-from", tmp_path / "nope")
    assert_one_line_error(missing, f"--init-from {tmp_path / 'nope'}: not found")
    (tmp_path / "empty").mkdir()
    empty = _cli("train", config, "--run-dir", tmp_path / "r2", "--init-from", tmp_path / "empty")
    assert_one_line_error(empty, "no manifest.json")
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints").mkdir(parents=True)
    assert_one_line_error(_cli("train", config, "--run-dir", tmp_path / "r4", "--init-from", unfinished),
                          "a run without an export yet", "mt-cli average")
    damaged = shutil.copytree(parent / "export", tmp_path / "damaged")
    with open(damaged / "model.weights.h5", "ab") as handle:
        handle.write(b"x")
    corrupt = _cli("train", config, "--run-dir", tmp_path / "r3", "--init-from", damaged)
    assert_one_line_error(corrupt, "--init-from", "model.weights.h5", "sha256 does not match")


def test_a_ctranslate2_export_is_refused(ct2_model, shifted, tmp_path) -> None:
    """`ct2_model`: conftest's `export --format ctranslate2` of the shared trained run."""
    config = _config(tmp_path / "c.yaml", shifted)
    result = _cli("train", config, "--run-dir", tmp_path / "run", "--init-from", ct2_model)
    assert_one_line_error(result, "--init-from", "CTranslate2 export", "native model directory")


def test_init_reset_must_be_a_boolean(parent, shifted, tmp_path) -> None:
    config = _config(tmp_path / "c.yaml", shifted, train={"init_reset": "sometimes"})
    result = _cli("train", config, "--init-from", parent)
    assert_one_line_error(result, "train.init_reset", "true or false")

"""Issue 11 ("Trust, round 2"): each test here fails if the promise it names breaks.

Mostly in process and on copies of the session's trained run, so they stay fast.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from helpers import REPO, assert_one_line_error, copy_run, tiny_config_text, toy_pairs, write_pairs

from mt_cli.cli.main import app
from mt_cli.core.config import Config, DecodeConfig, EvalConfig
from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import CheckpointError, ConfigError
from mt_cli.core.files import atomic_dir, clean_temporaries


def _config(tmp_path: Path, toy_dir: Path, name: str = "c.yaml", **sections: dict) -> Path:
    path = tmp_path / name
    path.write_text(tiny_config_text(toy_dir, **sections))
    return path


def _train(runner, config: Path, run: Path, *extra: str):
    return runner.invoke(app, ["train", str(config), "--run-dir", str(run), *extra])


def _tree(directory: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file below `directory`: any rewrite shows."""
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


# ---------------------------------------------------------------- 1: another SentencePiece model

def test_resume_with_another_sentencepiece_model_is_refused(runner, tmp_path, toy_dir) -> None:
    from mt_cli.core.tokenizer import train_sentencepiece

    inputs = [toy_dir / "train.src", toy_dir / "train.tgt"]
    spm_a = train_sentencepiece(inputs, tmp_path / "a", 48)
    spm_b = train_sentencepiece(inputs, tmp_path / "b", 48, model_type="bpe")  # same size, other pieces
    config = _config(tmp_path, toy_dir, train={"max_steps": 4, "save_every": 2},
                     tokenizer={"model": str(spm_a)})
    run = tmp_path / "run"
    assert _train(runner, config, run).exit_code == 0
    (run / "finished.json").unlink()
    before = _tree(run / "checkpoints")
    result = _train(runner, config, run, "--set", f"tokenizer.model={spm_b}", "--set", "train.max_steps=6")
    line = assert_one_line_error(result.stderr, "another SentencePiece model", str(spm_b), str(spm_a))
    assert re.search(r"sha256 [0-9a-f]{12}", line)
    assert result.exit_code == 1
    assert _tree(run / "checkpoints") == before  # untouched
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] <= 4  # no step taken


# ---------------------------------------------------------------- 2: not every restore failure is corruption

def test_restore_distinguishes_damage_from_a_mismatch(tmp_path) -> None:
    import tensorflow as tf

    from mt_cli.training.checkpoints import restore_latest, save_checkpoint

    saved = tf.train.Checkpoint(v=tf.Variable(tf.zeros([2])))
    for step in (1, 2):
        save_checkpoint(tmp_path, step, saved, {"step": step})
    other_shape = tf.train.Checkpoint(v=tf.Variable(tf.zeros([3])))
    with pytest.raises(CheckpointError, match=r"step-00000002: cannot restore \(ValueError") as caught:
        restore_latest(tmp_path, other_shape)
    assert caught.value.__cause__ is not None  # --debug shows the cause
    data = next((tmp_path / "step-00000002").glob("ckpt.data-*"))
    data.write_bytes(data.read_bytes()[:3])  # truncated: falls back to step 1
    assert restore_latest(tmp_path, tf.train.Checkpoint(v=tf.Variable(tf.zeros([2])))).step == 1


# ---------------------------------------------------------------- 3: build errors keep their cause

def test_atomic_dir_reports_io_errors_as_such_and_other_errors_with_their_cause(tmp_path) -> None:
    def full_disk(tmp: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def bug(tmp: Path) -> None:
        raise ValueError("weights have the wrong shape")

    with pytest.raises(CheckpointError, match=r"out: cannot write \(No space left on device, .* free there\)"):
        atomic_dir(tmp_path / "out", full_disk)
    with pytest.raises(CheckpointError, match=r"ValueError: weights have the wrong shape") as caught:
        atomic_dir(tmp_path / "out", bug)
    assert "cannot write" not in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)
    assert not list(tmp_path.iterdir())


def test_atomic_dir_says_the_previous_one_is_intact_only_when_there_was_one(tmp_path) -> None:
    """Issue 33 (12): "the previous one is intact" was said of a directory that never existed."""
    def failing(tmp: Path) -> None:
        (tmp / "weights").write_text("half")
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(CheckpointError) as first:
        atomic_dir(tmp_path / "out", failing)
    assert str(first.value) == f"{tmp_path / 'out' / 'weights'}: cannot write (Permission denied)"
    assert not (tmp_path / "out").exists()
    atomic_dir(tmp_path / "out", lambda tmp: (tmp / "weights").write_text("whole"))
    with pytest.raises(CheckpointError) as second:
        atomic_dir(tmp_path / "out", failing)
    assert str(second.value).endswith("cannot write (Permission denied); the previous one is intact")
    assert (tmp_path / "out" / "weights").read_text() == "whole"
    with pytest.raises(CheckpointError, match=r"ValueError: bug\)$"):
        atomic_dir(tmp_path / "new", lambda tmp: (_ for _ in ()).throw(ValueError("bug")))


# ---------------------------------------------------------------- 4: lengths vs model.max_length

def test_max_tokens_above_model_max_length_is_a_config_error(tmp_path, toy_dir) -> None:
    from mt_cli.training.loop import train

    config = _config(tmp_path, toy_dir, data={"max_target_tokens": 129})  # tiny: max_length 128
    with pytest.raises(ConfigError, match=r"data.max_target_tokens: must be <= model.max_length=128"):
        train(load_config(config), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_overlong_dev_lines_are_truncated_and_counted(runner, tmp_path, toy_dir) -> None:
    pairs = toy_pairs(10, seed=21)
    pairs[4] = (" ".join(["cat"] * 200) + " .", " ".join(["taco"] * 200) + " .")
    dev_src, dev_tgt = write_pairs(tmp_path, "dev", pairs)
    config = _config(tmp_path, toy_dir, data={"dev": {"source": str(dev_src), "target": str(dev_tgt)}},
                     train={"max_steps": 2, "eval_every": 2, "save_every": 2})
    result = _train(runner, config, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "10 pairs, kept 10, skipped 0 empty, truncated 1 over-long" in result.stderr


# ---------------------------------------------------------------- 5: the eval: section is read

def test_eval_section_drives_dev_scores(runner, tmp_path, toy_dir) -> None:
    config = _config(tmp_path, toy_dir, train={"max_steps": 2, "eval_every": 2, "eval_metric": "loss"},
                     eval={"metrics": ["ter"]})
    run = tmp_path / "run"
    assert _train(runner, config, run).exit_code == 0
    dev = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    dev = [r for r in dev if r["event"] == "dev"]
    assert {k for k in dev[-1] if k in ("loss", "bleu", "chrf", "ter")} == {"loss", "ter"}


@pytest.mark.parametrize("tokenize", ["ja-mecab", "ko-mecab"])
def test_a_tokenizer_without_its_extra_is_one_config_error_in_evaluate_and_in_training(tokenize: str) -> None:
    """One metric factory: `evaluate --tokenize` and the dev scores of `train` both say which
    package is missing (sacreBLEU raises RuntimeError or ImportError; neither may escape)."""
    import importlib.util

    from mt_cli.app.evaluate import score_corpus
    from mt_cli.core.errors import ConfigError
    from mt_cli.training.evaluation import dev_metric

    if importlib.util.find_spec("MeCab") or importlib.util.find_spec("mecab_ko"):
        pytest.skip("the MeCab extras are installed here")
    with pytest.raises(ConfigError, match=f"BLEU tokenizer '{tokenize}' needs an extra package.*pip install"):
        score_corpus(["a b"], [["a b"]], metrics=("bleu",), tokenize=tokenize)
    with pytest.raises(ConfigError, match=f"BLEU tokenizer '{tokenize}' needs an extra package.*pip install"):
        dev_metric("bleu", EvalConfig(tokenize=tokenize))


def test_dev_metrics_follow_tokenize_lowercase_and_word_order() -> None:
    from mt_cli.training.evaluation import dev_metric

    hyps, refs = ["The Cat Runs ."], [["the cat runs ."]]
    assert dev_metric("bleu", EvalConfig()).corpus_score(hyps, refs).score < 100
    assert dev_metric("bleu", EvalConfig(lowercase=True)).corpus_score(hyps, refs).score == pytest.approx(100)
    assert dev_metric("chrf", EvalConfig(chrf_word_order=2)).corpus_score(hyps, refs).name == "chrF2++"
    char_bleu = dev_metric("bleu", EvalConfig(tokenize="char"))
    char_bleu.corpus_score(hyps, refs)
    assert "tok:char" in str(char_bleu.get_signature())


def test_evaluate_takes_defaults_from_the_eval_section(runner, tmp_path) -> None:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("the cat runs .\n")
    hyp.write_text("The Cat Runs .\n")
    config = tmp_path / "e.yaml"
    config.write_text(yaml.safe_dump({"eval": {"lowercase": True, "metrics": ["bleu"]}}))
    result = runner.invoke(app, ["evaluate", "-r", str(ref), str(hyp), "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["metrics"] == ["bleu"] and doc["settings"]["lowercase"] is True
    assert doc["systems"][0]["scores"]["bleu"]["score"] == pytest.approx(100)


def _section_names(function: ast.AST, section: str, class_name: str) -> set[str]:
    """Names that hold a `section` object inside `function`: parameters or variables annotated
    with its class, and variables assigned from `<anything>.<section>` (also in an `x if c else y`
    or a tuple assignment `d, t = cfg.data, cfg.train`)."""
    def holds(node: ast.AST | None) -> bool:
        if isinstance(node, ast.IfExp):
            return holds(node.body) or holds(node.orelse)
        return isinstance(node, ast.Attribute) and node.attr == section

    def annotated(annotation: ast.AST | None) -> bool:
        return annotation is not None and class_name in ast.unparse(annotation)

    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.arg) and annotated(node.annotation):
            names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and (
                annotated(node.annotation) or holds(node.value)):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = (zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple)
                         and isinstance(node.value, ast.Tuple) else [(target, node.value)])
                names.update(t.id for t, v in pairs if isinstance(t, ast.Name) and holds(v))
    return names


def _fields_read(trees: list[ast.Module], section: str, class_name: str) -> set[str]:
    """Attributes read off a `section` object: `<x>.<section>.<field>`, or `<name>.<field>` where
    the enclosing function binds `name` to that section (see `_section_names`)."""
    read = set()
    for tree in trees:
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            names = _section_names(function, section, class_name)
            for node in ast.walk(function):
                if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Load):
                    continue
                owner = node.value
                if (isinstance(owner, ast.Attribute) and owner.attr == section) or (
                        isinstance(owner, ast.Name) and owner.id in names):
                    read.add(node.attr)
    return read


def test_every_config_key_is_read_somewhere() -> None:
    """A key that is validated but read by nothing is a silent no-op for the user: every
    section must be read off a Config (`cfg.<section>`), and every field read off an object
    of that section (`cfg.decode.beam_size`, `d.beam_size` with `d = cfg.decode` or
    `d: DecodeConfig`), outside config.py: the field's name appearing anywhere is not enough."""
    import dataclasses

    files = [p for p in (REPO / "mt_cli").rglob("*.py") if p.name != "config.py"]
    sources = "\n".join(p.read_text() for p in files)
    trees = [ast.parse(p.read_text(), str(p)) for p in files]
    unread = []
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal"):
            continue
        if not re.search(rf"\b(cfg|config|loaded\.config|self\.cfg)\.{section.name}\b", sources):
            unread.append(section.name)
        default = section.default_factory()  # type: ignore[misc]
        read = _fields_read(trees, section.name, type(default).__name__)
        unread += [f"{section.name}.{f.name}" for f in dataclasses.fields(default) if f.name not in read]
    assert unread == []


def test_the_config_key_check_is_not_fooled_by_a_name_elsewhere() -> None:
    """The check above must miss a field read off another object or only named in a string."""
    tree = ast.parse("def f(cfg, other, d: DecodeConfig):\n"
                     "    x = cfg.decode\n"
                     "    y, z = cfg.decode, cfg.train\n"
                     "    return other.beam_size, 'n_best', x.seed, d.batch_size, cfg.decode.dtype, y.top, z.no\n")
    assert _fields_read([tree], "decode", "DecodeConfig") == {"seed", "batch_size", "dtype", "top"}


# ---------------------------------------------------------------- 6: the export's config.yaml is hashed

def test_edited_export_config_is_refused(runner, trained_run, tmp_path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert "config.yaml" in manifest["files_sha256"]
    path = run / "export" / "config.yaml"
    path.write_text(path.read_text().replace("activation: relu", "activation: gelu"))
    result = runner.invoke(app, ["translate", "-m", str(run)], input="the cat .\n")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, str(path), "sha256 does not match")


# ---------------------------------------------------------------- 7, 11: finished.json and config.yaml

def test_truncated_finished_json_resumes_instead_of_a_traceback(runner, trained_run, tmp_path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    (run / "finished.json").write_text('{"step": 60, "rea')
    result = _train(runner, run / "config.yaml", run)
    assert result.exit_code == 0, result.output
    assert "finished.json: unreadable" in result.stderr
    assert json.loads((run / "finished.json").read_text())["step"] == 60


def test_finished_run_that_is_not_retrained_keeps_its_config(runner, trained_run, tmp_path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    before = (run / "config.yaml").read_bytes()
    result = _train(runner, run / "config.yaml", run, "--set", "train.log_every=7")
    assert result.exit_code == 0, result.output
    assert "already trained" in result.stderr
    assert (run / "config.yaml").read_bytes() == before


# ---------------------------------------------------------------- 8: the only complete checkpoint is never lost

def test_crash_between_the_renames_keeps_the_old_copy(tmp_path) -> None:
    old = tmp_path / ".old-step-00000010-4242"
    old.mkdir()
    (old / "state.json").write_text("{}")
    (tmp_path / ".tmp-step-00000010-xyz").mkdir()
    assert clean_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000010"]
    assert (tmp_path / "step-00000010" / "state.json").is_file()


def test_a_step_is_saved_once(trained_run, tmp_path) -> None:
    """A signal on a save step must not save (and rename aside) the same step again."""
    from mt_cli.training.session import Session

    run = copy_run(trained_run, tmp_path / "run")
    session = Session.open(load_config(run / "config.yaml"), run)
    before = _tree(run / "checkpoints")
    session.save()
    assert _tree(run / "checkpoints") == before


# ---------------------------------------------------------------- 10: options silently ignored

def test_options_the_search_ignores_are_named() -> None:
    assert DecodeConfig().ignored_options() == []
    [note] = DecodeConfig(sampling_temperature=0.5).ignored_options()
    assert "--temperature" in note and "decode.sampling_temperature=0.5" in note
    assert DecodeConfig(sampling_temperature=0.5, sampling_topk=5).ignored_options() == []
    [note] = DecodeConfig(coverage_penalty=0.2, beam_size=1, n_best=1).ignored_options()
    assert "--coverage-penalty" in note


def test_translate_warns_about_an_ignored_temperature(runner, trained_run) -> None:
    result = runner.invoke(app, ["translate", "-m", str(trained_run), "--temperature", "0.5"],
                           input="the cat .\n")
    assert result.exit_code == 0, result.output
    assert "--temperature" in result.stderr and "ignored" in result.stderr
    assert len(result.stdout.splitlines()) == 1


# ---------------------------------------------------------------- 12: average_last vs keep_last

def test_average_last_above_keep_last_is_a_config_error(tmp_path, toy_dir) -> None:
    from mt_cli.training.loop import train

    config = _config(tmp_path, toy_dir, train={"keep_last": 2, "average_last": 3})
    with pytest.raises(ConfigError, match=r"train.average_last: must be <= train.keep_last=2 .*got 3"):
        train(load_config(config), tmp_path / "run")


def test_config_validate_applies_the_training_rules(runner, tmp_path, toy_dir) -> None:
    config = _config(tmp_path, toy_dir, train={"keep_last": 2, "average_last": 3})
    result = runner.invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "train.average_last")


# ---------------------------------------------------------------- 18: the cache notices a changed tokenizer

def test_changed_tokenizer_is_noticed_by_the_cache(tmp_path, toy_dir) -> None:
    import numpy as np

    from mt_cli.core.tokenizer import Tokenizers, train_sentencepiece
    from mt_cli.training.data import encode_corpus

    inputs = [toy_dir / "train.src", toy_dir / "train.tgt"]
    spm = tmp_path / "spm.model"
    os.replace(train_sentencepiece(inputs, tmp_path / "a", 48), spm)
    first = encode_corpus(toy_dir / "dev.src", toy_dir / "dev.tgt", Tokenizers.load(spm), tmp_path / "cache", 100, 100)
    os.replace(train_sentencepiece(inputs, tmp_path / "b", 48, model_type="bpe"), spm)  # same path
    second = encode_corpus(toy_dir / "dev.src", toy_dir / "dev.tgt", Tokenizers.load(spm), tmp_path / "cache", 100, 100)
    assert first.directory != second.directory
    assert not np.array_equal(np.asarray(first.src), np.asarray(second.src))

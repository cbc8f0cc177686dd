"""Strict configs: presets, `base:` inheritance, path resolution, `--set`, and one-line errors.

Every error message is asserted exactly (or by its exact parts): the message is the user
interface of a config typo.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import PRESET_DIR, REPO, alias_bomb, assert_one_line_error
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.config import Config
from mt_cli.core.config_checks import from_dict
from mt_cli.core.config_loading import load_config, parse_override
from mt_cli.core.errors import ConfigError

# The presets shipped in the package, and the example configs kept in the repository.
PRESETS = sorted([*PRESET_DIR.glob("*.yaml"), *(REPO / "configs").glob("*.yaml")])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A resolved temp dir, so expected absolute paths compare equal to resolved ones."""
    return tmp_path.resolve()


# ---------------------------------------------------------------- presets


def test_presets_exist() -> None:
    names = {p.name for p in PRESETS}
    assert {"transformer-tiny.yaml", "transformer-small.yaml", "transformer-base.yaml",
            "transformer-big.yaml", "demo.yaml", "multi30k-en-de.yaml"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_validates(preset: Path) -> None:
    cfg = load_config(preset)
    assert isinstance(cfg, Config)
    assert cfg.origin == str(preset)
    assert cfg.model.hidden_dim % cfg.model.num_heads == 0
    assert cfg.decode.n_best <= cfg.decode.beam_size


def test_big_preset_inherits_from_base() -> None:
    cfg = load_config(PRESET_DIR / "transformer-big.yaml")
    assert (cfg.model.hidden_dim, cfg.model.num_heads, cfg.model.ffn_dim) == (1024, 16, 4096)
    assert cfg.model.dropout == 0.3
    assert cfg.model.encoder_layers == 6  # from transformer-base.yaml
    assert cfg.tokenizer.vocab_size == 32000  # from transformer-base.yaml
    assert cfg.train.effective_batch_tokens == 25000  # from transformer-base.yaml
    assert cfg.train.batch_tokens == 4096  # overridden by big


def test_multi30k_preset_resolves_paths_against_configs_dir() -> None:
    cfg = load_config(REPO / "configs" / "multi30k-en-de.yaml")
    data = REPO / "data" / "multi30k"
    assert [(c.source, c.target) for c in cfg.data.train] == [
        (str(data / "train.en"), str(data / "train.de"))]
    assert (cfg.data.dev.source, cfg.data.dev.target) == (str(data / "val.en"), str(data / "val.de"))
    assert cfg.data.test.source == str(data / "test2016.en")
    assert cfg.train.run_dir == str(REPO / "runs" / "multi30k-en-de")
    # inherited from transformer-small.yaml
    assert (cfg.model.hidden_dim, cfg.model.num_heads, cfg.train.precision) == (256, 4, "auto")
    assert (cfg.data.source_lang, cfg.data.target_lang) == ("en", "de")


# ---------------------------------------------------------------- base: inheritance


PARENT = """\
tokenizer:
  vocab_size: 500
model:
  hidden_dim: 64
  num_heads: 2
  ffn_dim: 128
"""


def test_base_child_overrides_one_key(work: Path) -> None:
    write(work / "parent.yaml", PARENT)
    child = write(work / "child.yaml", "base: parent.yaml\nmodel:\n  num_heads: 4\n")
    cfg = load_config(child)
    assert cfg.model.num_heads == 4
    assert cfg.model.hidden_dim == 64 and cfg.model.ffn_dim == 128  # merged, not replaced
    assert cfg.tokenizer.vocab_size == 500
    assert cfg.model.encoder_layers == Config().model.encoder_layers  # untouched default


def test_base_relative_path_from_another_directory(work: Path) -> None:
    write(work / "presets" / "parent.yaml", PARENT)
    child = write(work / "exp" / "child.yaml", "base: ../presets/parent.yaml\ntrain:\n  max_steps: 7\n")
    cfg = load_config(child)
    assert (cfg.model.hidden_dim, cfg.train.max_steps) == (64, 7)


def test_base_chain_of_three(work: Path) -> None:
    write(work / "a.yaml", PARENT)
    write(work / "b.yaml", "base: a.yaml\nmodel:\n  ffn_dim: 256\n")
    c = write(work / "c.yaml", "base: b.yaml\ntokenizer:\n  vocab_size: 300\n")
    cfg = load_config(c)
    assert (cfg.model.hidden_dim, cfg.model.ffn_dim, cfg.tokenizer.vocab_size) == (64, 256, 300)


@pytest.mark.parametrize("name", ["transformer-tiny.yaml", "transformer-tiny"])
def test_base_falls_back_to_preset_name(work: Path, name: str) -> None:
    child = write(work / "child.yaml", f"base: {name}\ntrain:\n  max_steps: 3\n")
    cfg = load_config(child)
    assert (cfg.model.hidden_dim, cfg.train.max_steps) == (32, 3)


# ---------------------------------------------------------------- issue 10: presets are package data


def test_presets_are_found_inside_the_package() -> None:
    """An installed wheel has no checkout around it: the presets and the demo corpus are package
    data, found through importlib.resources (tests/test_wheel.py installs the wheel)."""
    from mt_cli.core.packaged import DEMO_DATA_DIR, preset_names
    from mt_cli.core.packaged import PRESET_DIR as SHIPPED

    assert SHIPPED.resolve() == PRESET_DIR.resolve()
    assert preset_names() == ["demo", "transformer-base", "transformer-big", "transformer-small", "transformer-tiny"]
    demo = load_config(SHIPPED / "demo.yaml")
    corpora = [demo.data.train[0].source, demo.data.train[0].target, demo.data.dev.source, demo.data.test.target]
    assert [Path(p).parent for p in corpora] == [DEMO_DATA_DIR.resolve()] * 4
    assert all(Path(p).is_file() for p in corpora)


@pytest.mark.parametrize("given", ["transformer-small", "transformer-small.yaml"])
def test_a_preset_name_loads_from_any_directory(work: Path, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    """`mt-cli config show transformer-small` from a folder that holds no such file."""
    monkeypatch.chdir(work)
    cfg = load_config(given)
    assert (cfg.model.hidden_dim, cfg.origin) == (256, str(PRESET_DIR / "transformer-small.yaml"))


@pytest.mark.parametrize("name", ["transformer-small", "configs/transformer-small.yaml"])
def test_base_names_a_preset_from_any_folder(work: Path, name: str) -> None:
    """`configs/transformer-small.yaml` is the checkout path README gave before the presets moved
    into the package: configs written for it keep working where no such file exists."""
    child = write(work / "mine" / "child.yaml", f"base: {name}\ntrain:\n  max_steps: 3\n")
    cfg = load_config(child)
    assert (cfg.model.hidden_dim, cfg.model.num_heads, cfg.train.max_steps) == (256, 4, 3)


def test_a_file_beside_the_config_wins_over_the_preset(work: Path) -> None:
    write(work / "transformer-small.yaml", "model:\n  hidden_dim: 64\n  num_heads: 2\n")
    child = write(work / "child.yaml", "base: transformer-small.yaml\n")
    assert load_config(child).model.hidden_dim == 64


def test_an_unknown_preset_name_lists_the_presets(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    assert error_of(Path("transformer-huge")) == (
        f"{work / 'transformer-huge'}: config file not found, and 'transformer-huge' is not a preset "
        "(demo, transformer-base, transformer-big, transformer-small, transformer-tiny)")
    assert error_of(Path("elsewhere/transformer-small.yaml")) == (
        f"{work / 'elsewhere' / 'transformer-small.yaml'}: config file not found")


def test_base_loop_is_an_error(work: Path) -> None:
    a = write(work / "a.yaml", "base: b.yaml\n")
    b = write(work / "b.yaml", "base: a.yaml\n")
    assert error_of(a) == f"{a}: 'base' inheritance loops ({a} -> {b} -> {a})"


def test_base_self_loop_is_an_error(work: Path) -> None:
    a = write(work / "self.yaml", "base: self.yaml\n")
    assert error_of(a) == f"{a}: 'base' inheritance loops ({a} -> {a})"


def test_base_missing_file(work: Path) -> None:
    child = write(work / "child.yaml", "base: nowhere.yaml\n")
    assert error_of(child) == f"{work / 'nowhere.yaml'}: config file not found"


def test_base_must_be_a_string(work: Path) -> None:
    child = write(work / "child.yaml", "base: [a.yaml]\n")
    assert error_of(child) == f"base: expected a file name, got ['a.yaml'] (list) ({child})"


# ---------------------------------------------------------------- relative paths


def test_relative_paths_resolve_against_config_dir(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)  # cwd must not matter for paths written in the file
    exp = work / "exp"
    cfg_path = write(exp / "c.yaml", """\
data:
  train:
    - source: corpus/train.en
      target: corpus/train.de
    - source: /abs/other.en
      target: ../shared/other.de
  dev: {source: corpus/dev.en, target: corpus/dev.de}
  test: {source: corpus/test.en, target: corpus/test.de}
tokenizer:
  model: spm/spm.model
train:
  run_dir: runs/r1
""")
    (work / "elsewhere").mkdir()
    monkeypatch.chdir(work / "elsewhere")
    cfg = load_config(cfg_path)
    assert cfg.data.train[0].source == str(exp / "corpus" / "train.en")
    assert cfg.data.train[0].target == str(exp / "corpus" / "train.de")
    assert cfg.data.train[1].source == "/abs/other.en"  # absolute stays
    assert cfg.data.train[1].target == str(work / "shared" / "other.de")  # .. normalized
    assert cfg.data.dev.source == str(exp / "corpus" / "dev.en")
    assert cfg.data.test.target == str(exp / "corpus" / "test.de")
    assert cfg.tokenizer.model == str(exp / "spm" / "spm.model")
    assert cfg.train.run_dir == str(exp / "runs" / "r1")


def test_separate_target_model_path_is_resolved(work: Path) -> None:
    cfg_path = write(work / "c.yaml", """\
tokenizer: {joint: false, model: s.model, target_model: t.model}
model: {share_embeddings: target}
""")
    cfg = load_config(cfg_path)
    assert (cfg.tokenizer.model, cfg.tokenizer.target_model) == (
        str(work / "s.model"), str(work / "t.model"))


def test_single_train_corpus_mapping_becomes_a_list(work: Path) -> None:
    cfg_path = write(work / "c.yaml", "data:\n  train: {source: a.src, target: a.tgt}\n")
    cfg = load_config(cfg_path)
    assert [(c.source, c.target) for c in cfg.data.train] == [
        (str(work / "a.src"), str(work / "a.tgt"))]


def test_paths_in_base_resolve_against_base_dir(work: Path) -> None:
    write(work / "base" / "parent.yaml", """\
data:
  train:
    - {source: corpus/a.src, target: corpus/a.tgt}
tokenizer:
  model: spm.model
train:
  run_dir: parent-runs/x
""")
    child = write(work / "exp" / "child.yaml", """\
base: ../base/parent.yaml
data:
  dev: {source: dev.src, target: dev.tgt}
train:
  run_dir: runs/child
""")
    cfg = load_config(child)
    assert cfg.data.train[0].source == str(work / "base" / "corpus" / "a.src")
    assert cfg.data.train[0].target == str(work / "base" / "corpus" / "a.tgt")
    assert cfg.tokenizer.model == str(work / "base" / "spm.model")
    assert cfg.data.dev.source == str(work / "exp" / "dev.src")
    assert cfg.train.run_dir == str(work / "exp" / "runs" / "child")  # the child's value wins


# ---------------------------------------------------------------- --set overrides


def test_set_parses_yaml_scalars_and_nested_keys() -> None:
    cfg = load_config(PRESET_DIR / "transformer-tiny.yaml", [
        "train.max_steps=500", "model.dropout=0.25", "train.jit_compile=true",
        "decode.beam_size=5", "decode.seed=7", "eval.metrics=[bleu, chrf]", "data.source_lang=en"])
    assert cfg.train.max_steps == 500 and isinstance(cfg.train.max_steps, int)
    assert cfg.model.dropout == 0.25
    assert cfg.train.jit_compile is True
    assert cfg.decode.beam_size == 5 and cfg.decode.seed == 7
    assert cfg.eval.metrics == ("bleu", "chrf")
    assert cfg.data.source_lang == "en"
    assert cfg.model.hidden_dim == 32  # the file's value is kept
    assert cfg.origin == f"{PRESET_DIR / 'transformer-tiny.yaml'} + --set"


def test_set_null_and_later_override_wins() -> None:
    cfg = load_config(None, ["decode.seed=3", "decode.seed=null", "train.max_steps=5",
                             "train.max_steps=6"])
    assert cfg.decode.seed is None and cfg.train.max_steps == 6


def test_set_indexes_lists_and_resolves_paths_against_cwd(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    preset = REPO / "configs" / "multi30k-en-de.yaml"
    cfg = load_config(preset, ["data.train.0.source=x.en", "train.run_dir=runs/here",
                               "tokenizer.model=/abs/spm.model"])
    assert cfg.data.train[0].source == str(work / "x.en")
    assert cfg.data.train[0].target == str(REPO / "data" / "multi30k" / "train.de")  # untouched
    assert cfg.train.run_dir == str(work / "runs" / "here")
    assert cfg.tokenizer.model == "/abs/spm.model"


def test_set_appends_a_corpus_at_the_next_index(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    cfg = load_config(None, ["data.train.0.source=a.src", "data.train.0.target=a.tgt",
                             "data.train.1.source=b.src", "data.train.1.target=b.tgt",
                             "data.train.1.weight=2", "data.dev.source=d.src",
                             "data.dev.target=d.tgt"])
    assert [(c.source, c.target, c.weight) for c in cfg.data.train] == [
        (str(work / "a.src"), str(work / "a.tgt"), 1.0),
        (str(work / "b.src"), str(work / "b.tgt"), 2.0)]
    assert cfg.data.dev.source == str(work / "d.src")


def test_set_list_index_out_of_range() -> None:
    text = "data.train.2.source=x"
    assert error_of(REPO / "configs" / "multi30k-en-de.yaml", [text]) == (
        f"--set {text!r}: data.train is a list of 1; use an index 0..1")


@pytest.mark.parametrize("text, message", [
    ("foo", "--set 'foo': expected key.path=value, e.g. train.max_steps=1000"),
    ("=3", "--set '=3': missing key before '='"),
])
def test_set_malformed(text: str, message: str) -> None:
    assert error_of(None, [text]) == message
    with pytest.raises(ConfigError, match="^--set "):
        parse_override(text)


def test_set_value_keeps_text_after_first_equals() -> None:
    assert parse_override("data.source_lang=a=b") == (["data", "source_lang"], "a=b")
    assert parse_override("train.max_steps=100") == (["train", "max_steps"], 100)
    assert parse_override("train.run_dir=") == (["train", "run_dir"], "")


def test_set_errors_name_key_value_and_origin() -> None:
    preset = PRESET_DIR / "transformer-tiny.yaml"
    assert error_of(preset, ["train.max_steps=abc"]) == (
        f"train.max_steps: expected an integer, got 'abc' (str) ({preset} + --set)")
    assert error_of(None, ["model.hiden_dim=3"]) == (
        "model.hiden_dim: unknown key; did you mean 'hidden_dim'? (<defaults> + --set)")


# ---------------------------------------------------------------- unknown keys and types


def test_unknown_key_suggests_the_close_one(work: Path) -> None:
    path = write(work / "c.yaml", "model:\n  hiden_dim: 256\n")
    assert error_of(path) == f"model.hiden_dim: unknown key; did you mean 'hidden_dim'? ({path})"


def test_unknown_nested_corpus_key(work: Path) -> None:
    path = write(work / "c.yaml", "data:\n  dev: {source: a, target: b, taget: c}\n")
    assert error_of(path) == f"data.dev.taget: unknown key; did you mean 'target'? ({path})"


def test_unknown_top_level_section(work: Path) -> None:
    path = write(work / "c.yaml", "modle:\n  hidden_dim: 256\n")
    assert error_of(path) == f"modle: unknown key; did you mean 'model'? ({path})"
    path = write(work / "d.yaml", "optimizer:\n  lr: 1\n")
    assert error_of(path) == (
        f"optimizer: unknown key; valid keys: data, tokenizer, model, train, decode, eval ({path})")


def test_origin_is_not_a_config_key(work: Path) -> None:
    path = write(work / "c.yaml", "origin: x\n")
    assert error_of(path).startswith("origin: unknown key;")


@pytest.mark.parametrize("body, key, described, expected", [
    ("model:\n  hidden_dim: '256'\n", "model.hidden_dim", "'256' (str)", "an integer"),
    ("model:\n  hidden_dim: true\n", "model.hidden_dim", "True (bool)", "an integer"),
    ("model:\n  hidden_dim: [256]\n", "model.hidden_dim", "[256] (list)", "an integer"),
    ("model:\n  hidden_dim: 256.0\n", "model.hidden_dim", "256.0 (float)", "an integer"),
    ("model:\n  dropout: '0.1'\n", "model.dropout", "'0.1' (str)", "a number"),
    ("model:\n  dropout: false\n", "model.dropout", "False (bool)", "a number"),
    ("train:\n  jit_compile: 1\n", "train.jit_compile", "1 (int)", "true or false"),
    ("model:\n  norm: {a: 1}\n", "model.norm", "{'a': 1} (dict)", "a string"),
    ("data:\n  train:\n    - {source: 3, target: b}\n", "data.train[0].source", "3 (int)", "a string"),
    ("eval:\n  metrics: [bleu, 3]\n", "eval.metrics[1]", "3 (int)", "a string"),
])
def test_wrong_type_names_key_value_and_file(work: Path, body: str, key: str, described: str,
                                             expected: str) -> None:
    path = write(work / "c.yaml", body)
    assert error_of(path) == f"{key}: expected {expected}, got {described} ({path})"


def test_section_must_be_a_mapping(work: Path) -> None:
    path = write(work / "c.yaml", "model: 3\n")
    assert error_of(path) == f"model: expected a mapping of keys, got 3 (int) ({path})"


def test_null_for_a_required_value(work: Path) -> None:
    path = write(work / "c.yaml", "model:\n  hidden_dim: null\n")
    assert error_of(path) == f"model.hidden_dim: must not be null ({path})"
    path = write(work / "d.yaml", "decode:\n  seed: null\ntokenizer:\n  model: null\n")
    assert load_config(path).decode.seed is None  # optional fields accept null


@pytest.mark.parametrize("body, message", [
    ("model:\n  dropout: 1.5\n", "model.dropout: must be <= 0.9, got 1.5"),
    ("model:\n  dropout: -0.1\n", "model.dropout: must be >= 0, got -0.1"),
    ("tokenizer:\n  vocab_size: 2\n", "tokenizer.vocab_size: must be >= 8, got 2"),
    ("decode:\n  sampling_topp: 0\n", "decode.sampling_topp: must be > 0, got 0.0"),
    ("tokenizer:\n  character_coverage: 1.01\n", "tokenizer.character_coverage: must be <= 1, got 1.01"),
    ("data:\n  train:\n    - {source: a, target: b, weight: 0}\n",
     "data.train[0].weight: must be > 0, got 0.0"),
])
def test_out_of_range(work: Path, body: str, message: str) -> None:
    path = write(work / "c.yaml", body)
    assert error_of(path) == f"{message} ({path})"


@pytest.mark.parametrize("body, message", [
    ("train:\n  precision: bf16\n",
     "train.precision: must be one of auto, float32, bfloat16, float16, got 'bf16'; did you mean 'bfloat16'?"),
    ("model:\n  norm: sideways\n", "model.norm: must be one of pre, post, got 'sideways'"),
    ("tokenizer:\n  model_type: unigam\n",
     "tokenizer.model_type: must be one of unigram, bpe, char, word, got 'unigam'; did you mean 'unigram'?"),
    ("eval:\n  metrics: [bleu, rouge]\n", "eval.metrics[1]: must be one of bleu, chrf, ter, got 'rouge'"),
])
def test_choices(work: Path, body: str, message: str) -> None:
    path = write(work / "c.yaml", body)
    assert error_of(path) == f"{message} ({path})"


def test_set_string_field_keeps_yaml_keywords_as_text() -> None:
    cfg = load_config(None, ["data.source_lang=en", "data.target_lang=no"])
    assert cfg.data.target_lang == "no"


def test_quoted_set_value_stays_a_string() -> None:
    assert load_config(None, ["data.target_lang='no'"]).data.target_lang == "no"


def test_scalar_for_a_list_field_becomes_one_item() -> None:
    assert load_config(None, ["eval.metrics=chrf"]).eval.metrics == ("chrf",)


def test_scientific_notation_for_float_fields(work: Path) -> None:
    path = write(work / "c.yaml", "train:\n  adam_epsilon: 1e-9\n")
    assert load_config(path).train.adam_epsilon == 1e-9
    assert load_config(None, ["train.learning_rate=1e-3"]).train.learning_rate == 1e-3


# ---------------------------------------------------------------- cross-field rules


@pytest.mark.parametrize("body, message", [
    ("model:\n  hidden_dim: 256\n  num_heads: 6\n",
     "model.num_heads: must divide model.hidden_dim=256, got 6"),
    ("decode:\n  beam_size: 2\n  n_best: 3\n", "decode.n_best: must be <= decode.beam_size=2, got 3"),
    ("tokenizer:\n  joint: false\n",
     ("model.share_embeddings: 'all' needs tokenizer.joint=true (one vocabulary); "
      "use 'target' or 'none' for separate vocabularies")),
    ("tokenizer:\n  target_model: t.model\n",
     "tokenizer.target_model: only used when tokenizer.joint=false"),
    ("train:\n  batch_tokens: 4096\n  effective_batch_tokens: 1000\n",
     "train.effective_batch_tokens: must be 0 or >= train.batch_tokens=4096, got 1000"),
    ("data:\n  dev: {source: dev.en}\n", "data.dev: needs both 'source' and 'target' files"),
    ("data:\n  test: {target: test.de}\n", "data.test: needs both 'source' and 'target' files"),
    ("data:\n  train:\n    - {source: a, target: b}\n    - {source: c}\n",
     "data.train[1]: needs both 'source' and 'target' files"),
])
def test_cross_field_rules(work: Path, body: str, message: str) -> None:
    path = write(work / "c.yaml", body)
    assert error_of(path) == f"{message} ({path})"


def test_cross_field_rules_pass_at_the_boundary() -> None:
    cfg = load_config(None, ["model.hidden_dim=384", "model.num_heads=6", "decode.beam_size=3",
                             "decode.n_best=3", "tokenizer.joint=false",
                             "model.share_embeddings=target", "train.batch_tokens=1000",
                             "train.effective_batch_tokens=1000"])
    assert (cfg.model.num_heads, cfg.decode.n_best, cfg.train.effective_batch_tokens) == (6, 3, 1000)


def test_cross_field_rule_sees_the_merged_config(work: Path) -> None:
    # num_heads 6 alone is fine for hidden_dim 384, but not for the preset's 32
    child = write(work / "c.yaml", "base: transformer-tiny.yaml\nmodel:\n  num_heads: 6\n")
    assert error_of(child) == f"model.num_heads: must divide model.hidden_dim=32, got 6 ({child})"


# ---------------------------------------------------------------- YAML safety and syntax


def test_python_tag_is_rejected_and_nothing_runs(work: Path) -> None:
    marker = work / "PWNED"
    path = write(work / "evil.yaml",
                 f"train:\n  max_steps: 10\nmodel: !!python/object/apply:os.system ['touch {marker}']\n")
    assert error_of(path) == (
        f"{path}:3: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'; "
        "only plain YAML values are accepted (no !!python tags)")
    assert not marker.exists()


def test_python_name_tag_is_rejected(work: Path) -> None:
    path = write(work / "evil.yaml", "model:\n  norm: !!python/name:os.system ''\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: could not determine a constructor for the tag")
    assert message.endswith("only plain YAML values are accepted (no !!python tags)")


@pytest.mark.parametrize("body, line, problem", [
    ("model:\n  hidden_dim: 32\n   bad: 4\n", 3, "mapping values are not allowed here"),
    ("model:\n\thidden_dim: 32\n", 2, "found character '\\t' that cannot start any token"),
    ("model:\n  hidden_dim: 32\n  x: [1, 2\n  y: 3\n", 4, "expected ',' or ']', but got ':'"),
])
def test_yaml_syntax_error_names_file_and_line(work: Path, body: str, line: int, problem: str) -> None:
    path = write(work / "bad.yaml", body)
    assert error_of(path) == f"{path}:{line}: {problem}"


def test_top_level_must_be_a_mapping(work: Path) -> None:
    path = write(work / "list.yaml", "- a\n- b\n")
    assert error_of(path) == f"{path}: expected a mapping of sections at the top, got list"


def test_missing_config_file(work: Path) -> None:
    assert error_of(work / "nope.yaml") == f"{work / 'nope.yaml'}: config file not found"


def test_invalid_utf8_config(work: Path) -> None:
    path = work / "latin1.yaml"
    path.write_bytes(b"data:\n  source_lang: caf\xe9\n")
    assert error_of(path).startswith(f"{path}: cannot read config (")


@pytest.mark.parametrize("body", ["data: " + "[" * 3000 + "]" * 3000 + "\n", "data: " + "{a: " * 3000 + "}" * 3000])
def test_deeply_nested_yaml_is_one_line_error(work: Path, body: str) -> None:
    """PyYAML composes nesting recursively: 3,000 levels were a RecursionError traceback."""
    path = write(work / "deep.yaml", body)
    assert error_of(path) == (f"{path}: nested too deeply to read (thousands of levels of brackets or "
                              "indentation); a config is a few levels of sections")
    assert_one_line_error(CliRunner().invoke(app, ["config", "validate", str(path)]), str(path), "nested too deeply")
    with pytest.raises(ConfigError, match="^--set decode.beam_size: the value is nested too deeply"):
        load_config(None, ["decode.beam_size=" + "[" * 3000])


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_config_gives_defaults(work: Path, text: str) -> None:
    path = write(work / "empty.yaml", text)
    cfg = load_config(path)
    assert cfg == Config()
    assert cfg.origin == str(path)
    assert load_config(None) == Config()
    assert load_config(None).origin == "<defaults>"


def test_from_dict_validates_with_origin() -> None:
    cfg = from_dict({"model": {"hidden_dim": 64, "num_heads": 4}}, origin="mem")
    assert (cfg.model.hidden_dim, cfg.origin) == (64, "mem")
    with pytest.raises(ConfigError) as info:
        from_dict({"model": {"num_heads": 7}}, origin="mem")
    assert str(info.value) == "model.num_heads: must divide model.hidden_dim=512, got 7 (mem)"


# ---------------------------------------------------------------- to_yaml round trip


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_to_yaml_round_trips_presets(work: Path, preset: Path) -> None:
    cfg = load_config(preset)
    text = cfg.to_yaml()
    raw = yaml.safe_load(text)
    assert list(raw) == ["data", "tokenizer", "model", "train", "decode", "eval"]  # no 'origin'
    again = load_config(write(work / "round.yaml", text))
    assert again == cfg
    assert again.to_yaml() == text


def test_to_yaml_round_trips_a_custom_config(work: Path) -> None:
    cfg = load_config(None, [
        "data.train.0.source=/d/a b.src", "data.train.0.target=/d/ä.tgt", "data.train.0.weight=0.5",
        "data.train.1.source=/d/c.src", "data.train.1.target=/d/c.tgt",
        "data.dev.source=/d/dev.src", "data.dev.target=/d/dev.tgt",
        "data.source_lang='yes'", "tokenizer.joint=false", "tokenizer.model=/m/s.model",
        "tokenizer.target_model=/m/t.model", "model.share_embeddings=none",
        "train.adam_epsilon=0.000000001", "train.max_minutes=90", "decode.seed=0",
        "eval.metrics=[ter]"])
    text = cfg.to_yaml()
    again = load_config(write(work / "round.yaml", text))
    assert again == cfg
    assert again.data.source_lang == "yes"  # quoted in YAML, not read back as true
    assert again.train.adam_epsilon == 1e-9
    assert again.data.train[0].target == "/d/ä.tgt"


def test_demo_recipe_is_bounded_by_steps_and_picks_its_precision() -> None:
    """The quickstart trains the same model on every machine: no wall-clock budget."""
    cfg = load_config(PRESET_DIR / "demo.yaml")
    assert cfg.train.max_minutes == 0 and cfg.train.max_steps <= 1000
    assert (cfg.train.precision, cfg.decode.dtype) == ("auto", "auto")


def _path_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Dotted keys of every `path=True` field, read from the schema (lists at index 0)."""
    import dataclasses
    import typing

    keys = []
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        hint = hints[fld.name]
        inner = next((t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t)), None)
        if inner is not None:
            listed = typing.get_origin(hint) is tuple
            keys += _path_keys(inner, f"{prefix}{fld.name}.{'0.' if listed else ''}")
        elif fld.metadata.get("path"):
            keys.append(prefix + fld.name)
    return keys


def _nested(pairs: dict[str, str]) -> dict:
    """{'a': {'b': [{'c': v}]}} for {'a.b.0.c': v}, several keys merged."""
    root: dict = {}
    for key, value in pairs.items():
        node: dict | list = root
        parts = key.split(".")
        for part, following in zip(parts, parts[1:]):
            child: dict | list = [] if following.isdigit() else {}
            if part.isdigit():
                if len(node) <= int(part):
                    node.append(child)  # type: ignore[union-attr]
                node = node[int(part)]  # type: ignore[index]
            else:
                node = node.setdefault(part, child)  # type: ignore[union-attr]
        node[parts[-1]] = value  # type: ignore[index]
    return root


def _with_sibling(key: str, value: str) -> dict[str, str]:
    """A corpus needs both sides (the other gets an absolute path); a target model, two vocabularies."""
    stem, _, side = key.rpartition(".")
    if side in ("source", "target"):
        return {f"{stem}.{'target' if side == 'source' else 'source'}": "/abs/other", key: value}
    if key == "tokenizer.target_model":
        return {"tokenizer.joint": "false", "model.share_embeddings": "none", key: value}
    return {key: value}


def _value_at(cfg: Config, key: str) -> object:
    node: object = cfg
    for part in key.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)  # type: ignore[index]
    return node


def test_every_path_field_resolves_in_yaml_and_in_set(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule, the field flag: each path resolves against its YAML file's directory, or the
    working directory for --set; '-' (stdin) and absolute paths stay as they are."""
    keys = _path_keys()
    assert {"tokenizer.model", "tokenizer.target_model", "train.run_dir", "data.train.0.source",
            "data.train.0.target", "data.dev.source", "data.test.target"} <= set(keys)
    configs = work / "configs"
    configs.mkdir()
    elsewhere = work / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for key in keys:
        path = configs / "one.yaml"
        path.write_text(yaml.safe_dump(_nested(_with_sibling(key, "sub/file.txt"))).replace("'false'", "false"))
        assert _value_at(load_config(path), key) == str(configs / "sub" / "file.txt"), key
        for given, expected in (("sub/file.txt", str(elsewhere / "sub" / "file.txt")),
                                ("/abs/file.txt", "/abs/file.txt")):
            overrides = [f"{k}={v}" for k, v in _with_sibling(key, given).items()]
            assert _value_at(load_config(None, overrides), key) == expected, key


# ---------------------------------------------------------------- issue 33 (7): model sizes have bounds

@pytest.mark.parametrize("key, value, limit", [
    ("model.max_length", 1000000000, 65536),
    ("model.hidden_dim", 2147483648, 65536),
    ("model.ffn_dim", 10**12, 262144),
    ("model.encoder_layers", 100000, 1000),
    ("model.decoder_layers", 100000, 1000),
    ("model.num_heads", 2**31, 1024),
    ("tokenizer.vocab_size", 10**10, 1 << 20),
])
def test_model_size_fields_have_upper_bounds(key: str, value: int, limit: int) -> None:
    """`--set model.max_length=1000000000` allocated 8.4 GB and ended in a 62-line traceback."""
    preset = PRESET_DIR / "transformer-tiny.yaml"
    assert error_of(preset, [f"{key}={value}"]) == f"{key}: must be <= {limit}, got {value} ({preset} + --set)"


def test_a_model_larger_than_the_machine_memory_is_refused_before_allocation() -> None:
    """Every field within its bound, the product far beyond any machine (~400 TB of weights)."""
    preset = PRESET_DIR / "transformer-tiny.yaml"
    message = error_of(preset, ["model.encoder_layers=1000", "model.decoder_layers=1000",
                                "model.hidden_dim=65536", "model.ffn_dim=262144"])
    assert message.startswith("model.ffn_dim: the model needs about "), message
    assert "layers of model.hidden_dim=65536, model.ffn_dim=262144" in message
    assert "of memory available (" in message
    assert message.endswith(f"; lower model.ffn_dim or model.hidden_dim ({preset} + --set)")


def test_size_estimate_matches_the_built_model() -> None:
    """The estimate the memory check uses counts the weights the model really has."""
    from mt_cli.core.model_size import size_terms
    from mt_cli.model import build_model

    for share in ("all", "target", "none"):
        cfg = load_config(PRESET_DIR / "transformer-tiny.yaml",
                          [f"model.share_embeddings={share}", "tokenizer.joint=true", "model.encoder_layers=2"])
        m = cfg.model
        terms = size_terms(m.encoder_layers, m.decoder_layers, m.hidden_dim, m.ffn_dim, m.max_length, 40,
                           m.share_embeddings)
        weights = sum(t.nbytes for t in terms[:2]) // 4
        model = build_model(m, 40, 40)
        assert abs(weights - model.count_params()) <= 0.02 * model.count_params(), (share, weights)


# ---------------------------------------------------------------- aliases and long values (issue 33, point 2)

def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """The CLI as a real process, failing the test (not hanging it) past `timeout` seconds."""
    try:
        return subprocess.run([sys.executable, "-m", "mt_cli", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mt-cli {' '.join(a[:40] for a in args)}: still running after {timeout} s")


@pytest.mark.parametrize(("body", "key"), [
    (f"data:\n  train: {alias_bomb(9, '{source: a, target: b}')}\n", "data.train"),
    (f"model:\n  hidden_dim: {alias_bomb(8)}\n", "model.hidden_dim"),
])
def test_an_alias_bomb_in_a_config_file_is_refused_at_once(work: Path, body: str, key: str) -> None:
    """Nine levels of nine aliases under data.train cost 36 s and a MemoryError traceback (path
    resolution rebuilt every aliased list); eight under model.hidden_dim a 351 MB error line."""
    path = write(work / "bomb.yaml", body)
    assert len(body) < 1000
    started = time.perf_counter()
    result = run_cli("config", "validate", str(path))
    line = assert_one_line_error(result, str(path), "aliases expand to more than 100000 values")
    assert time.perf_counter() - started < 15 and len(line) < 400


def test_an_alias_bomb_in_a_set_value_is_refused_at_once(work: Path) -> None:
    """`--set decode.beam_size=<350-byte bomb>` printed a 39 MB error line."""
    empty = write(work / "empty.yaml", "")
    result = run_cli("config", "validate", str(empty), "--set", f"decode.beam_size={alias_bomb(8)}")
    line = assert_one_line_error(result, "--set decode.beam_size", "aliases expand to more than 100000 values")
    assert len(line) < 400


def test_an_alias_bomb_in_a_base_is_refused(work: Path) -> None:
    write(work / "base.yaml", f"data:\n  train: {alias_bomb(9, '{source: a, target: b}')}\n")
    child = write(work / "child.yaml", "base: base.yaml\n")
    result = run_cli("config", "validate", str(child))
    assert_one_line_error(result, str(work / "base.yaml"), "aliases expand")


def test_ordinary_aliases_load_and_a_self_referencing_one_is_refused(work: Path) -> None:
    """The budget lets a shared section through; `&t [*t]` (endless) recursed until a traceback."""
    path = write(work / "shared.yaml", "data:\n  dev: &held {source: d.src, target: d.tgt}\n  test: *held\n"
                                       "  train: [*held, {<<: *held, weight: 2.0}]\n")
    cfg = load_config(path)
    assert cfg.data.test == cfg.data.dev and cfg.data.train[0] == cfg.data.dev
    assert cfg.data.train[1].weight == 2.0 and cfg.data.train[1].source == str(work / "d.src")
    path = write(work / "loop.yaml", "data:\n  train: &t [*t]\n")
    assert error_of(path) == f"{path}: an alias refers to the collection that holds it (an endless value)"


@pytest.mark.parametrize("where", ["file", "set"])
def test_an_error_quotes_at_most_200_characters_of_a_value(work: Path, where: str) -> None:
    """A 1 MB value was reproduced whole in its error line."""
    huge = "x" * 1_000_000
    if where == "file":
        message = error_of(write(work / "long.yaml", f"model:\n  norm: {huge}\n"))
        nested = error_of(write(work / "list.yaml", f"model:\n  norm: [{', '.join([huge[:1000]] * 1000)}]\n"))
    else:
        message = error_of(None, [f"model.norm={huge}"])
        nested = error_of(None, [f"{huge}=1"])
    assert message.startswith("model.norm: must be one of pre, post, got 'xxx") and len(message) < 400
    assert len(nested) < 400

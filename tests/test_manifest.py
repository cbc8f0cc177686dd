"""Issue 23, points 8-10, 12 and 19: a model directory's manifest is input like any other.

Its file names stay inside the directory, the weights are always hashed, a malformed one is
one error line for every reader (translate, serve, export, --init-from), and random JSON in
its place never gives a traceback. Each test works on a copy of the session's trained export.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_one_line_error, tiny_config_text
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mt_cli.cli.main import app
from mt_cli.core.errors import MtError

MANIFEST = "manifest.json"


def _model(trained_run: Path, dest: Path) -> Path:
    """A private copy of the trained run's export."""
    return Path(shutil.copytree(trained_run / "export", dest))


def _edit(directory: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    manifest = json.loads((directory / MANIFEST).read_text())
    change(manifest)
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return directory


def _translate(runner, model: Path, *flags: str):
    return runner.invoke(app, ["translate", "-m", str(model), *flags], input="the cat .\n")


def _set_tokenizer(name: str) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        manifest["tokenizer"]["source"] = manifest["tokenizer"]["target"] = name
    return change


# ---------------------------------------------------------------- 8: plain names only

def test_export_never_writes_outside_through_a_manifest_name(runner, trained_run, tmp_path) -> None:
    """`tokenizer.source: ../../spm.model` (hash matching) made export overwrite a file
    outside both directories."""
    work = tmp_path / "work"
    model = _model(trained_run, work / "model")
    shutil.copyfile(model / "spm.model", tmp_path / "spm.model")  # what ../../spm.model reads
    victim = work / "spm.model"  # what <output parent>/.tmp-out-*/../../spm.model would write
    victim.write_text("precious")
    _edit(model, _set_tokenizer("../../spm.model"))
    result = runner.invoke(app, ["export", "-m", str(model), "-o", str(work / "sub" / "out")])
    assert_one_line_error(result, str(model / MANIFEST), "tokenizer.source", "'../../spm.model'",
                          "not a plain file name")
    assert victim.read_text() == "precious"
    assert not (work / "sub" / "out").exists()


@pytest.mark.parametrize("name", ["../spm.model", "/etc/hostname", "sub/spm.model", "..", "", "a\\b",
                                  "spm.model\x00", "spm\nmodel"])
def test_translate_and_serve_refuse_names_that_are_not_plain(runner, trained_run, tmp_path, name) -> None:
    model = _edit(_model(trained_run, tmp_path / "model"), _set_tokenizer(name))
    assert_one_line_error(_translate(runner, model), str(model / MANIFEST), "tokenizer.source",
                          "not a plain file name")
    result = runner.invoke(app, ["serve", "-m", str(model), "--port", "1"])
    assert_one_line_error(result, "tokenizer.source", "not a plain file name")


def test_files_sha256_names_are_checked_too(runner, trained_run, tmp_path) -> None:
    shutil.copyfile(trained_run / "export" / "config.yaml", tmp_path / "config.yaml")
    model = _model(trained_run, tmp_path / "model")
    _edit(model, lambda m: m["files_sha256"].update({"../config.yaml": m["files_sha256"]["config.yaml"]}))
    assert_one_line_error(_translate(runner, model), "files_sha256", "'../config.yaml'", "not a plain file name")


def test_init_from_refuses_names_that_are_not_plain(runner, trained_run, toy_dir, tmp_path) -> None:
    shutil.copyfile(trained_run / "export" / "spm.model", tmp_path / "spm.model")
    model = _edit(_model(trained_run, tmp_path / "model"), _set_tokenizer("../spm.model"))
    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_text(toy_dir))
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"), "--init-from", str(model)])
    assert_one_line_error(result, "--init-from", "tokenizer.source", "not a plain file name")
    assert not (tmp_path / "run" / "spm.model").exists()


def test_a_device_behind_a_manifest_name_is_refused_not_read(trained_run, tmp_path) -> None:
    """A tokenizer name (not in files_sha256) that is a link to /dev/zero was hashed forever."""
    model = _model(trained_run, tmp_path / "model")
    os.symlink("/dev/zero", model / "zero.model")
    _edit(model, _set_tokenizer("zero.model"))
    result = subprocess.run([sys.executable, "-m", "mt_cli", "translate", "-m", str(model)], input="a\n",
                            capture_output=True, text=True, timeout=120, check=False)
    assert_one_line_error(result, str(model / "zero.model"), "not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_the_model_directory_is_refused(runner, trained_run, tmp_path) -> None:
    model = _model(trained_run, tmp_path / "model")
    (model / "config.yaml").unlink()
    os.mkfifo(model / "config.yaml")
    assert_one_line_error(_translate(runner, model), str(model / "config.yaml"), "not a regular file")


# ---------------------------------------------------------------- 9: the weights are always verified

def test_weights_missing_from_files_sha256_are_refused(runner, trained_run, toy_dir, tmp_path) -> None:
    model = _edit(_model(trained_run, tmp_path / "model"), lambda m: m["files_sha256"].pop("model.weights.h5"))
    assert_one_line_error(_translate(runner, model), str(model / MANIFEST), "files_sha256 does not list "
                          "model.weights.h5")
    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_text(toy_dir))
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"), "--init-from", str(model)])
    assert_one_line_error(result, "--init-from", "files_sha256 does not list model.weights.h5")  # was KeyError


@pytest.mark.parametrize(("engine", "weights"), [("native", "model.weights.h5"), ("auto", "model.bin"),
                                                 ("ctranslate2", "config.json")])
def test_modified_weights_are_refused(runner, trained_run, tmp_path, engine: str, weights: str) -> None:
    """Each engine verifies the files it reads: the native weights, or the CTranslate2 conversion."""
    model = _model(trained_run, tmp_path / "model")
    with open(model / weights, "ab") as handle:
        handle.write(b"\0")
    assert_one_line_error(_translate(runner, model, "--engine", engine), str(model / weights), "sha256 does not match")


# ---------------------------------------------------------------- 10: malformed manifests

MALFORMED = {
    "no tokenizer": (lambda m: m.pop("tokenizer"), "tokenizer: missing"),
    "empty tokenizer": (lambda m: m.update(tokenizer={}), "tokenizer.source: missing"),
    "null source": (lambda m: m["tokenizer"].update(source=None), "tokenizer.source: expected a string, got null"),
    "numeric source": (lambda m: m["tokenizer"].update(source=3), "tokenizer.source: expected a string, got number 3"),
    "bad hash": (lambda m: m["tokenizer"].update(source_sha256="abc"), "tokenizer.source_sha256: expected a sha256"),
    "tokenizer list": (lambda m: m.update(tokenizer=["spm.model"]), "tokenizer: expected an object, got array"),
    "files list": (lambda m: m.update(files_sha256=["spm.model"]), "files_sha256: expected an object"),
    "files null": (lambda m: m.update(files_sha256=None), "files_sha256: expected an object, got null"),
    "hash number": (lambda m: m["files_sha256"].update({"config.yaml": 1}), "files_sha256.config.yaml: expected"),
    "step text": (lambda m: m.update(step="sixty"), "step: expected an integer, got string 'sixty'"),
    "step bool": (lambda m: m.update(step=True), "step: expected an integer, got boolean True"),
    "versions list": (lambda m: m.update(versions=[1]), "versions: expected an object, got array"),
    "no special ids": (lambda m: m.pop("special_ids"), "special_ids: missing"),
    "engine list": (lambda m: m.update(engine=["native"]), "unknown engine ['native']"),
    "weights file": (lambda m: m.update(weights={"file": "../w.h5"}), "weights.file: expected 'model.weights.h5'"),
    "conversion list": (lambda m: m.update(ctranslate2=["model.bin"]), "ctranslate2: expected an object, got array"),
    "conversion files": (lambda m: m["ctranslate2"].update(files="model.bin"),
                         "ctranslate2.files: expected a list of file names"),
    "conversion name": (lambda m: m["ctranslate2"]["files"].append("../model.bin"),
                        "ctranslate2.files: '../model.bin' is not a plain file name"),
    "conversion unhashed": (lambda m: m["ctranslate2"]["files"].append("extra.bin"),
                            "ctranslate2.files: 'extra.bin' is not listed in files_sha256"),
    "conversion weights": (lambda m: m["ctranslate2"].update(files=["config.json"]),
                           "ctranslate2.files: does not name model.bin"),
    "map name": (lambda m: m["ctranslate2"].update(vocabulary_map="../vmap.txt"),
                 "ctranslate2.vocabulary_map: expected 'vmap.txt' (the one name CTranslate2 reads), got '../vmap.txt'"),
    "map type": (lambda m: m["ctranslate2"].update(vocabulary_map=["vmap.txt"]),
                 "ctranslate2.vocabulary_map: expected a string, got array"),
    "map unhashed": (lambda m: (m["files_sha256"].pop("vmap.txt"), m["ctranslate2"]["files"].remove("vmap.txt")),
                     "ctranslate2.vocabulary_map: 'vmap.txt' is not listed in files_sha256"),
    "map outside the conversion": (lambda m: m["ctranslate2"]["files"].remove("vmap.txt"),
                                   "ctranslate2.vocabulary_map: 'vmap.txt' is not among ctranslate2.files"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_manifest_is_one_error_line(runner, trained_run, tmp_path, case) -> None:
    change, message = MALFORMED[case]
    model = _edit(_model(trained_run, tmp_path / "model"), change)
    assert_one_line_error(_translate(runner, model), str(model / MANIFEST), message)


@pytest.mark.parametrize(("text", "message"), [("[1, 2]", "expected a JSON object, got array"),
                                               ("null", "expected a JSON object, got null"),
                                               ("[" * 100_000, "unreadable (nested too deeply)"),
                                               ('{"a": ', "unreadable")])
def test_a_manifest_that_is_not_an_object_is_one_error_line(runner, trained_run, tmp_path, text, message) -> None:
    model = _model(trained_run, tmp_path / "model")
    (model / MANIFEST).write_text(text)
    assert_one_line_error(_translate(runner, model), str(model / MANIFEST), message)


def test_an_oversized_manifest_is_not_parsed(runner, trained_run, tmp_path) -> None:
    model = _model(trained_run, tmp_path / "model")
    (model / MANIFEST).write_text(json.dumps({"pad": "x" * (2 << 20)}))
    assert_one_line_error(_translate(runner, model), str(model / MANIFEST), "more than a manifest ever holds")


# ---------------------------------------------------------------- 12: leftovers beside an export

def test_leftovers_beside_an_export_are_cleaned(tmp_path) -> None:
    """A killed `average -o out` leaves .tmp-out-* / .old-out-*; the next write cleans them (and
    says so), and other dot folders of the user are left alone."""
    from mt_cli.core.files import atomic_dir

    stale_tmp, stale_old = tmp_path / ".tmp-out-pid99999999-abcd1234", tmp_path / ".old-out-4242"
    other_tmp, other_old = tmp_path / ".tmp-outer-abcd1234", tmp_path / ".old-out-2-17"
    live = tmp_path / f".tmp-out-pid{os.getppid()}-abcd1234"  # another process still building `out`
    for folder in (stale_tmp, stale_old, other_tmp, other_old, live):
        folder.mkdir()
    (tmp_path / "out").mkdir()  # the .old- is not the only copy: removed, not restored
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    logging.getLogger("mt_cli").addHandler(handler)  # the CLI's setup stops propagation to caplog
    try:
        atomic_dir(tmp_path / "out", lambda tmp: (tmp / "f").write_text("x"))
    finally:
        logging.getLogger("mt_cli").removeHandler(handler)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".old-out-2-17", ".tmp-outer-abcd1234", live.name,
                                                                 "out"])
    assert [r.getMessage() for r in warnings] == [f"{tmp_path}: cleaned 2 leftover(s) of an interrupted write "
                                                  "of out (.tmp-out-*, .old-out-*)"]


def test_export_restores_the_only_complete_copy_and_refuses_to_overwrite_it(runner, trained_run,
                                                                              tmp_path) -> None:
    """A crash between atomic_dir's two renames left only .old-out-PID: `export -o out` moves it
    back (the user's only complete copy) and then refuses, as for any existing -o."""
    old = tmp_path / ".old-out-4242"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    (tmp_path / ".tmp-out-zzzz9999").mkdir()
    result = runner.invoke(app, ["export", "-m", str(trained_run), "-o", str(tmp_path / "out"),
                                 "--format", "savedmodel"])
    assert_one_line_error(result, "out: already exists", after_log=True)
    assert "cleaned 2 leftover(s)" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "manifest.json").read_text() == "{}"


# ---------------------------------------------------------------- 19: random manifests

_NAMES = ["spm.model", "model.weights.h5", "config.yaml", "../spm.model", "/etc/hostname", "", "..", "a/b"]
_scalars = (st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=True)
            | st.text(max_size=12) | st.sampled_from(_NAMES) | st.sampled_from(["native", "ctranslate2"]))
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12) | st.sampled_from(_NAMES), inner, max_size=5),
                           max_leaves=12)
# Half the documents claim the supported format, so they get past the version check.
_KEYS = st.sampled_from(["tokenizer", "files_sha256", "special_ids", "engine", "step"]) | st.text(max_size=8)
documents = json_values | st.dictionaries(_KEYS, json_values, max_size=6).map(lambda d: {"format_version": 1, **d})
MANIFESTS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (dict keys only)."""
    if not isinstance(value, dict):
        return []
    return [p for key, inner in value.items() for p in [(*prefix, key), *_paths(inner, (*prefix, key))]]


def _load_or_one_error(directory: Path) -> None:
    """Every manifest reader: succeeds, or raises one mt-cli error of one line."""
    from mt_cli.app.serve.server import model_info
    from mt_cli.core.tokenizer import Tokenizers
    from mt_cli.engines.model_dir import _check_same_tokenizers, check_model_dir
    from mt_cli.engines.opened import open_model_dir
    from mt_cli.training.init_from import open_parent

    try:
        open_model_dir(directory)
        manifest, _ = check_model_dir(directory)
        tok = manifest["tokenizer"]
        Tokenizers.load(directory / tok["source"], directory / tok["target"])
        _check_same_tokenizers([directory, directory])
        open_parent(directory)
        model_info(directory)
    except MtError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)


@pytest.fixture(scope="module")
def pristine(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model(trained_run, tmp_path_factory.mktemp("manifest") / "model")


@MANIFESTS
@given(document=documents)
@example(document={"format_version": 1, "tokenizer": {}})
@example(document={"format_version": 1, "tokenizer": {"source": None, "target": None}, "files_sha256": {}})
def test_random_json_as_manifest_loads_or_is_one_error(pristine: Path, document: object) -> None:
    (pristine / MANIFEST).write_text(json.dumps(document))
    _load_or_one_error(pristine)


@pytest.fixture(scope="module")
def real_manifest(trained_run: Path) -> dict[str, Any]:
    return json.loads((trained_run / "export" / MANIFEST).read_text())


@MANIFESTS
@given(data=st.data(), delete=st.booleans(), value=json_values)
def test_mutated_real_manifest_loads_or_is_one_error(pristine: Path, real_manifest: dict[str, Any],
                                                    data: st.DataObject, delete: bool, value: object) -> None:
    document = json.loads(json.dumps(real_manifest))
    path = data.draw(st.sampled_from(_paths(document)))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    (pristine / MANIFEST).write_text(json.dumps(document))
    _load_or_one_error(pristine)


# ---------------------------------------------------------------- issue 33 (7): absurd sizes in config.yaml

@pytest.mark.parametrize("key, value, expected", [
    ("max_length", 1000000000, "model.max_length: must be <= 65536, got 1000000000"),
    ("ffn_dim", 262144, None),  # within its bound; with the three below, ~400 TB of weights
])
def test_translate_refuses_a_model_directory_asking_for_an_absurd_size(runner, trained_run, tmp_path, key,
                                                                      value, expected) -> None:
    """A model directory's config.yaml (re-hashed in its manifest, as a hand-made directory
    would be) is input too: the size is refused in one line, before anything is allocated."""
    import time

    import yaml

    from mt_cli.core.files import file_sha256

    model = _model(trained_run, tmp_path / "model")
    config = yaml.safe_load((model / "config.yaml").read_text())
    config["model"][key] = value
    if expected is None:
        config["model"].update(encoder_layers=1000, decoder_layers=1000, hidden_dim=65536)
        expected = "model.ffn_dim: the model needs about "
    (model / "config.yaml").write_text(yaml.safe_dump(config))
    _edit(model, lambda m: m["files_sha256"].update({"config.yaml": file_sha256(model / "config.yaml")}))
    started = time.perf_counter()
    result = _translate(runner, model, "--engine", "native")
    assert time.perf_counter() - started < 20
    line = assert_one_line_error(result, expected)
    assert line.endswith(f"({model / 'config.yaml'})"), line

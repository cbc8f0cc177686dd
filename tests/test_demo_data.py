"""The synthetic demo corpus (scripts/make_demo_data.py, mt_cli/core/demo_data/) and the Multi30k recipe
(scripts/get_multi30k.py)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE_DEMO = REPO / "scripts" / "make_demo_data.py"
GET_MULTI30K = REPO / "scripts" / "get_multi30k.py"
DEMO = REPO / "mt_cli" / "core" / "demo_data"
MULTI30K = Path(__file__).resolve().parents[2] / "shared/data/multi30k"
FILES = [f"{split}.{lang}" for split in ("train", "dev", "test") for lang in ("en", "de")]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo_data", MAKE_DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), f"{path.name}: no trailing newline"
    return text[:-1].split("\n")


def generate(out: Path, *extra: str) -> dict[str, bytes]:
    result = run(MAKE_DEMO, "--out", out, *extra)
    assert result.returncode == 0, result.stderr
    return {name: (out / name).read_bytes() for name in FILES}


def test_small_generation_is_deterministic_and_clean(tmp_path: Path) -> None:
    small = ("--train", "300", "--dev", "40", "--test", "40", "--seed", "5")
    first, second = generate(tmp_path / "a", *small), generate(tmp_path / "b", *small)
    assert first == second
    for split, n in (("train", 300), ("dev", 40), ("test", 40)):
        en, de = lines(tmp_path / "a" / f"{split}.en"), lines(tmp_path / "a" / f"{split}.de")
        assert len(en) == len(de) == n
        for s in en + de:
            assert s.strip() == s and s, f"empty or padded line in {split}: {s!r}"
            assert (s[0].isupper() or s[0].isdigit()) and s[-1] in ".?", s
    train = set(lines(tmp_path / "a" / "train.en")) | set(lines(tmp_path / "a" / "train.de"))
    for split in ("dev", "test"):
        held_out = lines(tmp_path / "a" / f"{split}.en") + lines(tmp_path / "a" / f"{split}.de")
        assert not train & set(held_out), f"{split} sentences leak into train"
    other_seed = generate(tmp_path / "c", "--train", "300", "--dev", "40", "--test", "40")
    assert other_seed != first


def test_committed_demo_data_matches_generator(tmp_path: Path) -> None:
    """Fails when the grammar changed but the demo corpus was not regenerated (or was hand-edited)."""
    fresh = generate(tmp_path / "demo")
    for name in FILES:
        assert (DEMO / name).read_bytes() == fresh[name], (
            f"mt_cli/core/demo_data/{name} is stale: run python scripts/make_demo_data.py")


def test_committed_demo_data_shape() -> None:
    counts = {split: len(lines(DEMO / f"{split}.en")) for split in ("train", "dev", "test")}
    assert counts == {"train": 20000, "dev": 500, "test": 500}
    for split, n in counts.items():
        assert len(lines(DEMO / f"{split}.de")) == n
    size = sum(p.stat().st_size for p in DEMO.iterdir() if p.is_file())
    assert size < 2_000_000
    lengths = [len(s.split()) for s in lines(DEMO / "train.en")]
    assert min(lengths) >= 4 and max(lengths) <= 30
    assert 6 <= sum(lengths) / len(lengths) <= 12
    assert (DEMO / "README.md").is_file()


def test_grammar_agreement_and_word_order() -> None:
    g = load_generator()
    noun = {n.en: n for n in g.NOUNS}
    verb = {v.en[0]: v for v in g.VERBS}
    adj = {a.en: a for a in g.ADJS}
    assert g.np_de(g.NP("def", noun["man"], plural=True), 2) == "den Männern"
    assert g.np_de(g.NP("indef", noun["dog"], adj=adj["big"]), 1) == "einen großen Hund"
    assert g.np_de(g.NP("indef", noun["dog"]), 1, neg=True) == "keinen Hund"
    expensive_cars = g.NP("bare", noun["car"], plural=True, adj=adj["expensive"])
    assert g.np_de(expensive_cars, 0) == "teure Autos"
    assert g.np_en(g.NP("indef", noun["egg"])) == "an egg"
    she, him = g.NP("pron", idx=3), g.NP("pron", idx=2)
    call = g.Clause(she, verb["call"], obj=g.NP("def", noun["man"]))
    assert g.render_en(call) == "she calls the man"
    assert g.render_de(call) == "sie ruft den Mann an"
    assert g.render_de(call, "sub", conj="weil") == "weil sie den Mann anruft"
    past = g.Clause(him, verb["see"], "past", neg=True, obj=g.NP("indef", noun["dog"]),
                    time=("yesterday", "gestern"))
    assert g.render_en(past) == "he did not see a dog yesterday"
    assert g.render_de(past) == "er hat gestern keinen Hund gesehen"
    front = replace(past, time=None, neg=False)
    assert g.render_en(front, question=True) == "did he see a dog"
    assert g.render_de(front, front="gestern") == "gestern hat er einen Hund gesehen"
    assert g.render_de(front, "q") == "hat er einen Hund gesehen"


def test_generator_counts_do_not_move_test_and_dev(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", "--train", "50", "--dev", "30", "--test", "30")
    b = generate(tmp_path / "b", "--train", "80", "--dev", "30", "--test", "30")
    for name in ("dev.en", "dev.de", "test.en", "test.de"):
        assert a[name] == b[name]


def needs_multi30k() -> None:
    if not (MULTI30K / "train.en").is_file():
        pytest.skip(f"no local Multi30k copy at {MULTI30K}")


def test_get_multi30k_from_local_copy_verifies_hashes(tmp_path: Path) -> None:
    needs_multi30k()
    out = tmp_path / "m30k"
    result = run(GET_MULTI30K, "--from", MULTI30K, "--out", out)
    assert result.returncode == 0, result.stderr
    for split, n in (("train", 29000), ("val", 1014), ("test2016", 1000)):
        for lang in ("en", "de"):
            path = out / f"{split}.{lang}"
            assert path.read_bytes() == (MULTI30K / f"{split}.{lang}").read_bytes()
            assert path.read_bytes().count(b"\n") == n
    assert result.stdout.count("sha256 ok") == 6
    again = run(GET_MULTI30K, "--from", MULTI30K, "--out", out)
    assert again.returncode == 0 and again.stdout.count("already present") == 6


def test_get_multi30k_rejects_tampered_file(tmp_path: Path) -> None:
    needs_multi30k()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("train", "val", "test2016"):
        for lang in ("en", "de"):
            shutil.copyfile(MULTI30K / f"{name}.{lang}", src / f"{name}.{lang}")
    with open(src / "val.de", "ab") as f:
        f.write(b"ein eingeschmuggelter Satz.\n")
    result = run(GET_MULTI30K, "--from", src, "--out", tmp_path / "out")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "val.de" in message and "sha256" in message
    assert not (tmp_path / "out" / "val.de").exists()


def test_get_multi30k_missing_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run(GET_MULTI30K, "--from", tmp_path / "empty", "--out", tmp_path / "out")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "missing file" in message and "train.en" in message

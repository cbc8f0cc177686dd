"""`mt-cli data clean` and `data check` on real files with real language ID: every rule fires on
a crafted corpus and the clean pairs are kept in order; bad input gets one line naming the
file, flag or code; the output directory appears whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import DEMO_DIR, assert_one_line_error

from mt_cli.cli.main import app
from mt_cli.core.clean_settings import RULES, CleanConfig

MT_CLI = [sys.executable, "-m", "mt_cli"]
LANGS = ["--source-lang", "en", "--target-lang", "de"]

CLEAN = [  # (en, de) pairs that pass every rule, from the demo corpus's style
    ("He goes through the school.", "Er geht durch die Schule."),
    ("When does the girl laugh quietly?", "Wann lacht das Mädchen leise?"),
    ("A baker comes to the church at eight o'clock.", "Ein Bäcker kommt um acht Uhr zur Kirche."),
    ("Dog.", "Hund."),  # short: language not judged, kept
    ("The old man reads a book in the garden.", "Der alte Mann liest ein Buch im Garten."),
]
# One pair per rule, each meant to be dropped by that rule and no earlier one (raw bytes allowed).
NOISE: dict[str, tuple[bytes | str, bytes | str]] = {
    "empty": ("The children are playing outside.", "   "),
    "invalid_utf8": (b"The cat sleeps \xff\xfe on the sofa.", "Die Katze schl\u00e4ft auf dem Sofa."),
    "control_chars": ("The bus stops\x07 at the station.", "Der Bus h\u00e4lt am Bahnhof."),
    "duplicate": CLEAN[0],
    "identical": ("Angela Merkel visited Paris in May.", "Angela  Merkel visited Paris in May."),
    "too_short": ("Thanks", "Danke"),  # with --min-words 2
    "too_long": (" ".join(["word"] * 300), "Ein langer Satz."),
    "ratio_chars": ("Yes, he does.", "Ja, das tut er jeden Tag mit gro\u00dfer Freude und Sorgfalt im Haus."),
    "ratio_words": ("the captain of the big steam ship company on the river",
                    "Donaudampfschifffahrtsgesellschaftskapit\u00e4n hier."),
    "mostly_urls": ("See https://www.example.com/a/b/c.html", "Siehe https://www.example.com/a/b/c.html?x=1"),
    "mostly_markup": ('<div class="a"> <span> x </span> </div>', '<div class="b"> <span> y </span> </div>'),
    "mostly_numbers": ("2019 - 2020 : 12,345", "2019 - 2020 : 12.345"),
    "mostly_punctuation": ("!!! ??? ... ---", "!!! ??? ... --"),
    "overlap": ("A   WOMAN sings a song on the stage.", "Eine Frau singt ein Lied auf der B\u00fchne."),
    "wrong_language": ("Le petit chat dort tranquillement sur le canap\u00e9 du salon.",
                       "Die kleine Katze schl\u00e4ft ruhig auf dem Sofa im Wohnzimmer."),
}
AGAINST = "A woman sings a song on the stage.\n"


def _bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


@pytest.fixture()
def corpus(tmp_path: Path) -> tuple[Path, Path, Path]:
    """in/train.en, in/train.de: the clean pairs with one noisy pair per rule between them,
    and in/test.en for --against."""
    pairs = [CLEAN[0], CLEAN[1], *NOISE.values(), CLEAN[2], CLEAN[3], CLEAN[4]]
    folder = tmp_path / "in"
    folder.mkdir()
    source, target, against = folder / "train.en", folder / "train.de", folder / "test.en"
    source.write_bytes(b"".join(_bytes(s) + b"\n" for s, _ in pairs))
    target.write_bytes(b"".join(_bytes(t) + b"\r\n" for _, t in pairs))  # CRLF: read as plain lines
    against.write_text(AGAINST, encoding="utf-8")
    return source, target, against


def _clean(runner, source: Path, target: Path, out: Path, *extra: str):
    return runner.invoke(app, ["data", "clean", str(source), str(target), *LANGS, "-o", str(out), *extra])


def test_every_rule_fires_once_and_the_clean_pairs_are_kept_in_order(runner, corpus, tmp_path) -> None:
    source, target, against = corpus
    out = tmp_path / "out"
    result = _clean(runner, source, target, out, "--against", str(against), "--min-words", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = {name: 1 for name in RULES}
    expected["too_short"] = 2  # "Thanks" and "Dog." with --min-words 2
    assert report["rules"] == expected
    kept = [pair for pair in CLEAN if pair != CLEAN[3]]
    assert (out / "train.en").read_text(encoding="utf-8") == "".join(s + "\n" for s, _ in kept)
    assert (out / "train.de").read_text(encoding="utf-8") == "".join(t + "\n" for _, t in kept)
    assert report["pairs"] == {"read": len(NOISE) + len(CLEAN), "kept": len(kept), "dropped": len(NOISE) + 1}
    assert report["overlap"] == {str(against): 1}
    on_disk = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert on_disk["rules"] == report["rules"] and on_disk["settings"]["min_words"] == 2
    for side, path in (("source", source), ("target", target)):
        assert report["inputs"][side]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        written = out / path.name
        assert report["outputs"][side]["sha256"] == hashlib.sha256(written.read_bytes()).hexdigest()
    assert report["machine"]["cpu"]["cores"] >= 1 and report["versions"]["py3langid"]
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "train.de", "train.en"]


def test_rules_turned_off_keep_their_pairs(runner, corpus, tmp_path) -> None:
    source, target, _ = corpus
    out = tmp_path / "out"
    result = _clean(runner, source, target, out, "--keep-duplicates", "--keep-identical", "--no-lang-id",
                    "--keep-control-chars", "--max-ratio-chars", "0", "--max-ratio-words", "0",
                    "--min-letter-share", "0", "--max-words", "0", "--max-chars", "0", "--json")
    assert result.exit_code == 0, result.output
    rules = json.loads(result.stdout)["rules"]
    assert {name for name, n in rules.items() if n} == {"empty", "invalid_utf8"}
    kept = (out / "train.en").read_text(encoding="utf-8")
    assert "Le petit chat" in kept and "https://www.example.com" in kept and kept.count(CLEAN[0][0]) == 2


def test_check_counts_the_same_writes_nothing_and_exits_0(runner, corpus, tmp_path) -> None:
    source, target, against = corpus
    before = sorted(p.name for p in source.parent.iterdir())
    result = runner.invoke(app, ["data", "check", str(source), str(target), *LANGS, "--against", str(against)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    # Without --min-words 2, "Thanks"/"Danke" is kept too.
    assert f"{len(NOISE) + len(CLEAN)} pairs; clean would keep {len(CLEAN) + 1}" in text
    for name in RULES:
        assert name in text
    assert "source chars" in text and "source/target words" in text and "en " in text and "de " in text
    assert f"{against}: 1 pairs" in text
    assert sorted(p.name for p in source.parent.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    as_json = runner.invoke(app, ["data", "check", str(source), str(target), "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["rules"]["wrong_language"] == 0 and report["languages"] is None  # no languages: not judged
    assert report["stats"]["source"]["languages"]["en"] > 0.5
    assert report["stats"]["source"]["words"]["p50"] >= 5


def test_out_dir_holding_an_input_is_refused(runner, corpus) -> None:
    source, target, _ = corpus
    before = {p.name: p.read_bytes() for p in source.parent.iterdir()}
    result = _clean(runner, source, target, source.parent)
    assert_one_line_error(result, f"-o {source.parent}", "holds the input", str(source))
    result = _clean(runner, source, target, source.parent / ".." / "in")
    assert_one_line_error(result, "holds the input")
    assert {p.name: p.read_bytes() for p in source.parent.iterdir()} == before


def test_out_dir_with_other_files_is_refused_and_a_previous_output_replaced(runner, corpus, tmp_path) -> None:
    source, target, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(_clean(runner, source, target, out), "holds other files", "notes.txt")
    (out / "notes.txt").unlink()
    assert _clean(runner, source, target, out).exit_code == 0
    assert _clean(runner, source, target, out, "--no-lang-id").exit_code == 0  # a previous run's output
    assert "Le petit chat" in (out / "train.en").read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("args", "parts"), [
    (["--source-lang", "xx", "--target-lang", "de"], ["--source-lang", "'xx'", "en, eo, es"]),
    (["--source-lang", "en", "--target-lang", "en"], ["both 'en'"]),
    ([*LANGS, "--max-ratio-chars", "-1"], ["--max-ratio-chars", ">= 0"]),
    ([*LANGS, "--min-letter-share", "2"], ["--min-letter-share", "<= 1"]),
    ([*LANGS, "--lang-candidates", "en,qq"], ["--lang-candidates", "'qq'"]),
])
def test_bad_options_name_the_flag(runner, corpus, tmp_path, args, parts) -> None:
    source, target, _ = corpus
    result = runner.invoke(app, ["data", "clean", str(source), str(target), *args, "-o", str(tmp_path / "out")])
    assert_one_line_error(result, *parts)
    assert not (tmp_path / "out").exists()


def test_misaligned_files_name_both_files_and_counts(runner, corpus, tmp_path) -> None:
    source, target, _ = corpus
    short = tmp_path / "short.de"
    short.write_bytes(b"".join(target.read_bytes().splitlines(keepends=True)[:4]))
    n = len(source.read_bytes().splitlines())
    for command in (["clean", "-o", str(tmp_path / "out")], ["check"]):
        result = runner.invoke(app, ["data", command[0], str(source), str(short), *LANGS, *command[1:]])
        assert_one_line_error(result, f"{source} has {n} lines but {short} has 4")
    missing = runner.invoke(app, ["data", "check", str(tmp_path / "nope.en"), str(target)])
    assert_one_line_error(missing, "nope.en: file not found")
    assert not (tmp_path / "out").exists()


def test_misaligned_pipes_are_caught_while_reading(tmp_path) -> None:
    """Inputs that read once are not counted first: the shorter one's end is the check."""
    (tmp_path / "a.en").write_text("".join(s + "\n" for s, _ in CLEAN), encoding="utf-8")
    (tmp_path / "a.de").write_text("".join(t + "\n" for _, t in CLEAN[:3]), encoding="utf-8")
    script = (f"{' '.join(MT_CLI)} data check <(cat {tmp_path / 'a.en'}) <(cat {tmp_path / 'a.de'}) "
              "--source-lang en --target-lang de")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert_one_line_error(result, "has 5 lines but", "has 3")


def _big_corpus(folder: Path, parts: list[tuple[int, int]]) -> tuple[Path, Path]:
    """The demo corpus's lines [start, stop) for each (start, stop) of `parts`, in turn."""
    folder.mkdir(exist_ok=True)
    paths = folder / "big.en", folder / "big.de"
    for path, side in zip(paths, ("en", "de")):
        lines = (DEMO_DIR / f"train.{side}").read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(b"".join(lines[start:stop]) for start, stop in parts))
    return paths


def test_workers_give_the_same_output_as_one_process(tmp_path) -> None:
    source, target = _big_corpus(tmp_path / "in", [(0, 8000), (0, 2000)])  # 10,000 pairs: 5 chunks
    reports = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        done = subprocess.run([*MT_CLI, "data", "clean", str(source), str(target), *LANGS, "-o", str(out),
                               "--workers", workers, "--json"], capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout))
    assert reports[1]["workers"] == 2 and reports[0]["workers"] == 1
    assert reports[0]["rules"] == reports[1]["rules"]
    for side in ("source", "target"):
        assert reports[0]["outputs"][side]["sha256"] == reports[1]["outputs"][side]["sha256"]
    assert reports[0]["rules"]["duplicate"] >= 2000  # found across chunks and processes


def test_a_killed_run_leaves_no_output_directory(tmp_path) -> None:
    """SIGKILL mid-run: OUT_DIR does not exist (its files were being built aside), and the next
    run cleans the leftover and succeeds."""
    source, target = _big_corpus(tmp_path / "in", [(0, 20000)] * 5)  # 100,000 pairs: ~10 s of work here
    out = tmp_path / "out"
    proc = subprocess.Popen([*MT_CLI, "data", "clean", str(source), str(target), *LANGS, "-o", str(out),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".tmp-out-") and any(p.iterdir()) for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "the run ended before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    assert all(p.name == "in" or p.name.startswith(".tmp-out-") for p in tmp_path.iterdir())
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.en").write_text("".join(s + "\n" for s, _ in CLEAN), encoding="utf-8")
    (small / "a.de").write_text("".join(t + "\n" for _, t in CLEAN), encoding="utf-8")
    again = subprocess.run([*MT_CLI, "-q", "data", "clean", str(small / "a.en"), str(small / "a.de"), *LANGS,
                            "-o", str(out)], capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "small"]


def test_hash_set_finds_duplicates_within_and_across_chunks() -> None:
    from mt_cli.core.hashset import HashSet

    seen = HashSet()
    rng = np.random.default_rng(1)
    chunks = [rng.integers(1, 2**63, 1000, dtype=np.uint64) for _ in range(20)]
    chunks[5][:10] = chunks[2][:10]   # across chunks
    chunks[7][500] = chunks[7][3]     # within a chunk: the first is kept
    new = [seen.first_seen(chunk) for chunk in chunks]
    assert (~new[5][:10]).all() and new[5][10:].all()
    assert new[7][3] and not new[7][500]
    assert sum(int(n.sum()) for n in new) == len(seen) == 20_000 - 11


def test_settings_defaults_pass_their_own_rules() -> None:
    from mt_cli.core.config_checks import typed_fields

    defaults = CleanConfig()
    import dataclasses

    values = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(CleanConfig)}
    assert typed_fields(CleanConfig, values, {}) == defaults


def test_a_line_over_the_byte_bound_is_too_long_never_decoded(runner, tmp_path) -> None:
    """A line over 4 x --max-chars bytes is cut while reading (never held whole): too_long, even
    with invalid UTF-8 past the cut."""
    source, target = tmp_path / "a.en", tmp_path / "a.de"
    source.write_bytes(b"x" * 5000 + b"\xff\n" + CLEAN[0][0].encode() + b"\n")
    target.write_text(f"Ein Satz.\n{CLEAN[0][1]}\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "check", str(source), str(target), *LANGS, "--max-chars", "100", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rules"]["too_long"] == 1 and report["pairs"]["kept"] == 1


def test_a_training_config_cleans_its_corpora_as_data_clean_does(runner, toy_dir, tmp_path) -> None:
    """`data.clean:` applies the same rules while the cache is encoded (dev and test sets as the
    --against files): the same pairs kept as `mt-cli data clean`, counted in the stats line and
    in metrics.jsonl's data record; the cache changes with the settings."""
    import yaml
    from helpers import tiny_config_text, toy_pairs, write_pairs

    pairs = toy_pairs(300, seed=1)
    dev_src = (toy_dir / "dev.src").read_text().splitlines()
    dev_tgt = (toy_dir / "dev.tgt").read_text().splitlines()
    noisy = (pairs + pairs[:40] + [(s, s) for s, _ in pairs[40:55]] + list(zip(dev_src[:4], dev_tgt[:4]))
             + [("http://example.com/a?b=1", "http://example.com/a?b=2")])
    src, tgt = write_pairs(tmp_path, "noisy", noisy)
    raw = yaml.safe_load(tiny_config_text(toy_dir, train={"max_steps": 1, "eval_every": 1}))
    raw["data"]["train"] = [{"source": str(src), "target": str(tgt)}]
    raw["data"]["clean"] = {}
    config = tmp_path / "clean.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    cleaned = runner.invoke(app, ["-q", "data", "clean", str(src), str(tgt), "--source-lang", "src",
                                  "--target-lang", "tgt", "--no-lang-id", "-o", str(tmp_path / "out"),
                                  "--against", str(toy_dir / "dev.src"), "--against", str(toy_dir / "dev.tgt")])
    assert cleaned.exit_code == 0, cleaned.output
    kept = len((tmp_path / "out" / "noisy.src").read_text().splitlines())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    data = [r for r in records if r["event"] == "data"]
    assert len(data) == 1 and data[0]["lines"] == len(noisy) and data[0]["kept"] == kept
    assert data[0]["cleaned"]["duplicate"] >= 40 and data[0]["cleaned"]["identical"] == 15
    assert data[0]["cleaned"]["overlap"] == 4 and data[0]["cleaned"]["mostly_urls"] == 1
    assert f"data.clean dropped {len(noisy) - kept} (" in result.stderr
    caches = sorted(p.name for p in (tmp_path / "run" / "cache").iterdir() if p.name.startswith("noisy"))
    raw["data"]["clean"] = {"drop_identical": False}
    config.write_text(yaml.safe_dump(raw))
    again = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run2")])
    assert again.exit_code == 0, again.output
    assert "identical" not in again.stderr.split("data.clean dropped")[1].splitlines()[0]
    assert caches and all(c not in {p.name for p in (tmp_path / "run2" / "cache").iterdir()} for c in caches)


def test_the_sentencepiece_model_learns_from_the_pairs_data_clean_keeps(runner, toy_dir, tmp_path) -> None:
    """With data.clean, the run's SentencePiece model is trained on the kept pairs: letters that
    only junk pairs (untranslated copies) hold get no piece, and the scratch copies are gone;
    without data.clean the same corpus gives them pieces."""
    import sentencepiece as spm
    import yaml
    from helpers import tiny_config_text, toy_pairs, write_pairs

    junk = [(f"жщ{i} ъэ юя", f"жщ{i} ъэ юя") for i in range(30)]  # target = source: dropped as identical
    src, tgt = write_pairs(tmp_path, "noisy", toy_pairs(300, seed=2) + junk)
    raw = yaml.safe_load(tiny_config_text(toy_dir, train={"max_steps": 1, "eval_every": 1}))
    raw["data"]["train"] = [{"source": str(src), "target": str(tgt)}]
    pieces = {}
    for name, clean in (("cleaned", {}), ("raw", None)):
        raw["data"]["clean"] = clean
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(raw))
        result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        model = spm.SentencePieceProcessor(model_file=str(next((tmp_path / name).glob("spm*.model"))))
        pieces[name] = {model.id_to_piece(i) for i in range(model.get_piece_size())}
        assert not list((tmp_path / name).glob(".spm-input-*"))
    assert not {"ж", "ъ", "ю"} & pieces["cleaned"] and {"ж", "ъ", "ю"} <= pieces["raw"]


def test_a_corpus_data_clean_empties_is_one_line_naming_it(runner, toy_dir, tmp_path) -> None:
    import yaml
    from helpers import tiny_config_text, toy_pairs, write_pairs

    src, tgt = write_pairs(tmp_path, "copies", [(s, s) for s, _ in toy_pairs(300, seed=5)])  # untranslated
    raw = yaml.safe_load(tiny_config_text(toy_dir))
    raw["data"]["train"] = [{"source": str(src), "target": str(tgt)}]
    raw["data"]["clean"] = {}
    raw["tokenizer"]["vocab_size"] = 32  # one side's words only
    config = tmp_path / "copies.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run")])
    assert_one_line_error(result, "copies.src", "no usable sentence pairs", "300 dropped by data.clean",
                          after_log=True)

"""`translate --split-sentences` (issue 32, point 1): each line a paragraph, its sentences
translated together with every other line's, joined back with the line's own spacing; a
sentence over the model's limit is cut, never truncated; bounded on huge input.

The splitting itself is checked with a counter of one token per character or word; the
command on the session's tiny trained model (128 positions), against its own engine."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

pytest.importorskip("sentencex")

from mt_cli.cli.main import app
from mt_cli.core.sentences import split_lines


def per_char(lines: list[str]) -> list[int]:
    return [len(line) for line in lines]


def per_word(lines: list[str]) -> list[int]:
    return [len(line.split()) for line in lines]


def test_sentences_and_their_separators_come_back_in_place() -> None:
    lines = ["  Hello there.  How are you?\u00a0Fine.\t", "", "   ", "One line only"]
    split = split_lines(lines, "en", 100, per_word)
    assert split.sentences == ["Hello there.", "How are you?", "Fine.", "One line only"]
    assert split.counts == [3, 0, 0, 1]
    assert split.join([s.upper() for s in split.sentences]) == [
        "HELLO THERE.  HOW ARE YOU?\u00a0FINE.", "", "", "ONE LINE ONLY"]


def test_a_sentence_over_the_limit_is_cut_between_words_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    line = "one two three four five six seven. Eight nine."
    with caplog.at_level(logging.WARNING, logger="mt_cli"):
        split = split_lines(["x", line], "en", 5, per_word)  # a part counts a piece per join too
    assert split.sentences[1:] == ["one two three", "four five six", "seven.", "Eight nine."]
    assert split.join(split.sentences) == ["x", line]
    assert "line 2: a sentence of 7 tokens, over the model's limit of 5 tokens: translated in 3 parts" in caplog.text
    assert "not truncated" in caplog.text


def test_a_10000_character_word_is_cut_into_windows_that_fit(caplog: pytest.LogCaptureFixture) -> None:
    word = "ab" * 5000
    with caplog.at_level(logging.WARNING, logger="mt_cli"):
        split = split_lines([word], "en", 31, per_char)
    assert "".join(split.sentences) == word and max(map(len, split.sentences)) <= 31
    assert split.join(split.sentences) == [word]
    assert "a sentence of 10000 characters" in caplog.text


@pytest.mark.parametrize("paragraph", ["A dog runs in the park. " * 45_000, "word " * 210_000])
def test_a_1mb_paragraph_is_split_in_bounded_time(paragraph: str) -> None:
    started = time.perf_counter()
    split = split_lines([paragraph], "en", 31, per_char)
    assert time.perf_counter() - started < 10
    assert split.join(split.sentences) == [paragraph.strip()]
    assert max(map(len, split.sentences)) <= 31


# ---------------------------------------------------------------- the command

def test_split_sentences_translates_each_sentence_and_keeps_the_layout(trained_run: Path, toy_dir: Path,
                                                                     tmp_path: Path) -> None:
    """N lines out for N in; each line is its sentences' translations (the engine's own, decoded
    alone) joined with the input's separators."""
    from mt_cli.engines.choice import open_translator

    sentences = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:6]
    lines = [f"{sentences[0]}  {sentences[1]}\t{sentences[2]}", "", sentences[3], f"{sentences[4]} {sentences[5]}"]
    source = tmp_path / "paragraphs.src"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source), "--split-sentences"])
    assert result.exit_code == 0, result.stderr
    alone = [n[0].text for n in open_translator(trained_run, engine="ctranslate2").translate_nbest(sentences)]
    expected = [f"{alone[0]}  {alone[1]}\t{alone[2]}", "", alone[3], f"{alone[4]} {alone[5]}"]
    assert result.stdout.split("\n")[:-1] == expected


def test_a_paragraph_over_the_models_limit_is_no_longer_cut(trained_run: Path, toy_dir: Path,
                                                           tmp_path: Path) -> None:
    """The tiny model reads 127 pieces: a paragraph of 20 sentences loses most of itself
    without splitting (truncated, with a warning); split, every sentence is translated."""
    from mt_cli.engines.choice import open_translator

    sentences = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:20]
    source = tmp_path / "long.src"
    source.write_text(" ".join(sentences) + "\n", encoding="utf-8")
    whole = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source)])
    assert whole.exit_code == 0 and "tokens, truncated to 127" in whole.stderr
    split = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source), "--split-sentences"])
    assert split.exit_code == 0 and "truncated" not in split.stderr, split.stderr
    alone = [n[0].text for n in open_translator(trained_run, engine="ctranslate2").translate_nbest(sentences)]
    assert split.stdout == " ".join(alone) + "\n"


def test_a_10000_character_sentence_is_translated_in_parts_with_a_warning(trained_run: Path, toy_dir: Path,
                                                                         tmp_path: Path) -> None:
    words = " ".join((toy_dir / "test.src").read_text(encoding="utf-8").replace(".", "").split())
    line = (words + " ") * (10_000 // len(words) + 1)
    source = tmp_path / "huge.src"
    source.write_text(line[:10_000].strip() + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source), "--split-sentences",
                                      "--beam-size", "1"])
    assert result.exit_code == 0, result.stderr
    assert "over the model's limit of 127 tokens: translated in" in result.stderr and "truncated" not in (
        result.stderr.replace("not truncated", ""))
    assert result.stdout.count("\n") == 1


@pytest.mark.parametrize(("extra", "says"), [
    (["--prefix-file", "{src}"], "--prefix-file: not with --split-sentences"),
    (["--shard", "1/2"], "--shard: not with --split-sentences"),
    (["--n-best", "2", "--beam-size", "2"], "--n-best 2: sentence splitting gives one translation per line"),
])
def test_what_splitting_cannot_serve_is_one_error_line(trained_run: Path, toy_dir: Path, extra: list[str],
                                                       says: str) -> None:
    src = str(toy_dir / "test.src")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), src, "--split-sentences",
                                      *[e.format(src=src) for e in extra]])
    assert_one_line_error(result, says)


def test_a_missing_segmenter_names_the_extra(monkeypatch: pytest.MonkeyPatch, trained_run: Path,
                                             toy_dir: Path) -> None:
    from mt_cli.core import sentences

    monkeypatch.setattr(sentences, "installed", lambda module: module != "sentencex")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(toy_dir / "test.src"),
                                      "--split-sentences"])
    assert_one_line_error(result, "pip install 'mt-cli[sentences]'", "sentencex")

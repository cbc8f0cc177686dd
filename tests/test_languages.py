"""Several target languages in one model: tags as SentencePiece user-defined symbols, the
manifest's language pairs, `--target-lang` on both engines, evaluate and serve; `<bt>` tags on
back-translated corpora. One tiny model is trained for the module: its second "language"
answers every source with `ja ja .`, so a model that reads its tag switches visibly after a
few hundred steps (Multi30k en->{de,fr} is the slow test in test_multi30k.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error, tiny_config_text, toy_pairs, write_pairs

from mt_cli.cli.main import app
from mt_cli.core.languages import Languages, target_tag

SECOND = "ja ja ."


def _config(directory: Path, toy: Path, **train: object) -> Path:
    """The toy corpus twice: into `aa` (its own targets) and `bb` (SECOND for every source)."""
    pairs = toy_pairs(600, seed=1)
    src, tgt = write_pairs(directory, "train", pairs)
    second = directory / "train.bb"
    second.write_text(f"{SECOND}\n" * len(pairs), encoding="utf-8")
    raw = yaml.safe_load(tiny_config_text(toy, train={"max_steps": 200, "eval_every": 200, **train}))
    raw["data"].update(source_lang="en", target_lang="aa",
                       train=[{"source": str(src), "target": str(tgt)},
                              {"source": str(src), "target": str(second), "target_lang": "bb"}])
    path = directory / "two.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def two_targets(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny en->{aa,bb} run, trained once through the CLI."""
    from typer.testing import CliRunner

    work = tmp_path_factory.mktemp("two-targets")
    result = CliRunner().invoke(app, ["train", str(_config(work, toy_dir)), "--run-dir", str(work / "run")])
    assert result.exit_code == 0, result.output
    return work / "run"


def _translate(runner, run: Path, source: Path, *flags: str) -> list[str]:
    result = runner.invoke(app, ["-q", "translate", "-m", str(run), str(source), *flags])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_the_manifest_lists_the_pairs_and_the_tags_are_unsplit_pieces(two_targets: Path) -> None:
    manifest = json.loads((two_targets / "export" / "manifest.json").read_text())
    assert manifest["languages"] == {"pairs": [["en", "aa"], ["en", "bb"]],
                                     "target_tags": {"aa": "<2aa>", "bb": "<2bb>"}}
    from mt_cli.core.tokenizer import SentencePieceModel

    spm = SentencePieceModel.load(two_targets / "export" / "spm.model")
    assert {"<2aa>", "<2bb>"} <= spm.unsplit_symbols()
    assert spm.encode_pieces(["x<2bb>y"])[0].count("<2bb>") == 1  # never split, wherever it stands


def test_each_corpus_is_cached_with_its_target_tag_before_every_source(two_targets: Path) -> None:
    from mt_cli.core.tokenizer import SentencePieceModel
    from mt_cli.training.data import EncodedCorpus

    spm = SentencePieceModel.load(two_targets / "spm.model")
    firsts = {}
    for stats in (two_targets / "cache").glob("*/stats.json"):
        corpus = EncodedCorpus(stats.parent)
        heads = {int(corpus.pair(i)[0][0]) for i in range(len(corpus))}
        firsts[json.loads(stats.read_text())["target"]] = heads
    assert {Path(k).name: v for k, v in firsts.items()} == {
        "train.tgt": {spm.piece_id("<2aa>")}, "train.bb": {spm.piece_id("<2bb>")},
        "dev.tgt": {spm.piece_id("<2aa>")}}  # the dev set's target: data.target_lang


def test_target_lang_switches_the_output_on_both_engines(two_targets: Path, toy_dir: Path, runner) -> None:
    source = toy_dir / "dev.src"
    outputs = {}
    for engine in ("native", "ctranslate2"):
        for lang in ("aa", "bb"):
            outputs[engine, lang] = _translate(runner, two_targets, source, "--target-lang", lang,
                                               "--engine", engine, "--beam-size", "1")
    assert outputs["native", "aa"] == outputs["ctranslate2", "aa"]  # the same tagged pieces in both
    assert outputs["native", "bb"] == outputs["ctranslate2", "bb"]
    aa, bb = outputs["native", "aa"], outputs["native", "bb"]
    assert sum("ja" in line.split() for line in bb) >= 0.9 * len(bb), bb
    assert not any("ja" in line.split() for line in aa), aa


def test_a_missing_or_unknown_target_lang_is_one_line_listing_the_languages(two_targets: Path, toy_dir: Path,
                                                                           runner) -> None:
    source = str(toy_dir / "dev.src")
    missing = runner.invoke(app, ["translate", "-m", str(two_targets), source])
    assert_one_line_error(missing, "--target-lang", "translates into aa, bb")
    unknown = runner.invoke(app, ["translate", "-m", str(two_targets), source, "--target-lang", "fr"])
    assert_one_line_error(unknown, "'fr' is not a target language", "aa, bb")
    scored = runner.invoke(app, ["evaluate", "-m", str(two_targets), "-s", source, "-r", str(toy_dir / "dev.tgt"),
                                 "--target-lang", "zz"])
    assert_one_line_error(scored, "'zz' is not a target language")


def test_evaluate_takes_the_target_lang(two_targets: Path, toy_dir: Path, runner) -> None:
    args = ["-q", "evaluate", "-m", str(two_targets), "-s", str(toy_dir / "dev.src"), "-r", str(toy_dir / "dev.tgt"),
            "--json", "--metrics", "chrf"]
    own = json.loads(runner.invoke(app, [*args, "--target-lang", "aa"]).stdout)
    other = json.loads(runner.invoke(app, [*args, "--target-lang", "bb"]).stdout)
    assert own["systems"][0]["scores"]["chrf"]["score"] > other["systems"][0]["scores"]["chrf"]["score"]


def test_a_single_target_model_takes_its_own_language_or_none(trained_run: Path, toy_dir: Path, runner) -> None:
    source = toy_dir / "dev.src"
    plain = _translate(runner, trained_run, source)
    assert _translate(runner, trained_run, source, "--target-lang", "tgt") == plain  # data.target_lang's default
    wrong = runner.invoke(app, ["translate", "-m", str(trained_run), str(source), "--target-lang", "de"])
    assert_one_line_error(wrong, "'de' is not a target language of this model (it translates into tgt)")


def test_a_bt_corpus_gets_its_tag_at_training_time_only(toy_dir: Path, tmp_path: Path, runner) -> None:
    raw = yaml.safe_load(tiny_config_text(toy_dir, train={"max_steps": 2, "eval_every": 2}))
    synthetic = {**raw["data"]["train"][0], "tag": "bt"}
    raw["data"]["train"].append(synthetic)
    config = tmp_path / "bt.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    from mt_cli.core.tokenizer import SentencePieceModel
    from mt_cli.training.data import EncodedCorpus

    spm = SentencePieceModel.load(tmp_path / "run" / "spm.model")
    bt = spm.piece_id("<bt>")
    assert "<bt>" in spm.unsplit_symbols()
    caches = (tmp_path / "run" / "cache").glob("*/stats.json")
    heads = sorted(int(EncodedCorpus(s.parent).pair(0)[0][0] == bt) for s in caches)
    assert heads == [0, 0, 1]  # train (real), dev: untagged; train (bt): tagged
    manifest = json.loads((tmp_path / "run" / "export" / "manifest.json").read_text())
    assert manifest["languages"] == {"pairs": [["src", "tgt"]], "target_tags": {}}
    assert len(_translate(runner, tmp_path / "run", toy_dir / "dev.src")) == 20  # no tag asked at translation


def test_a_tokenizer_model_without_the_tag_or_with_it_as_text_is_refused(toy_dir: Path, tmp_path: Path,
                                                                          runner) -> None:
    from mt_cli.core.tokenizer import train_sentencepiece

    texts = tmp_path / "text.txt"
    texts.write_text("".join(f"{s} <2aa> <2bb> {t}\n" for s, t in toy_pairs(300, seed=4)), encoding="utf-8")
    learned = train_sentencepiece([texts], tmp_path / "learned", vocab_size=60, model_type="word")
    plain = train_sentencepiece([toy_dir / "train.src", toy_dir / "train.tgt"], tmp_path / "plain", vocab_size=48)
    config = _config(tmp_path, toy_dir)
    for model, words in ((learned, "has '<2aa>' as an ordinary piece learned from text"),
                         (plain, "lacks the tag '<2aa>'")):
        result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / f"run-{model.stem}"),
                                     "--set", f"tokenizer.model={model}"])
        assert_one_line_error(result, "tokenizer.model", words)


def test_language_codes_and_symbols_are_checked_in_the_config(toy_dir: Path, tmp_path: Path, runner) -> None:
    raw = yaml.safe_load(tiny_config_text(toy_dir))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    for setting, words in (("data.train.0.target_lang=f r", "data.train[0].target_lang: 'f r' is not a language code"),
                           ("tokenizer.user_defined_symbols=[</s>]", "tokenizer.user_defined_symbols[0]"),
                           ("data.dev.tag=bt", "data.dev.tag: only training corpora are tagged")):
        result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "r"), "--set", setting])
        assert_one_line_error(result, words)


def test_a_manifest_with_bad_languages_is_refused() -> None:
    from mt_cli.core.errors import CheckpointError

    assert Languages.from_manifest(None, "m", ("en", "de")).pairs == (("en", "de"),)
    for raw in ({"pairs": []}, {"pairs": [["en"]]}, {"pairs": [["en", "../x"]]}, [["en", "de"]]):
        with pytest.raises(CheckpointError, match="'languages' must hold 'pairs'"):
            Languages.from_manifest(raw, "m/manifest.json", ("en", "de"))
    assert target_tag("pt-BR") == "<2pt-BR>"
    assert Languages((("en", "de"), ("en", "fr"))).source_tags("fr") == ["<2fr>"]
    assert Languages((("en", "de"), ("fr", "de"))).source_tags("de") == []  # one target: untagged
    assert Languages((("en", "de"),)).targets == ("de",)


def test_serve_takes_the_target_lang_per_request_and_on_the_page(two_targets: Path, toy_dir: Path,
                                                                  tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    import httpx
    from test_serve import start_server, stop_server

    server = start_server(two_targets, tmp_path / "server.log", quiet=True)  # CTranslate2, the default
    try:
        languages = server.get("/info").json()["languages"]
        assert languages["targets"] == ["aa", "bb"] and languages["target_required"] is True
        lines = (toy_dir / "dev.src").read_text().splitlines()[:4]
        answer = server.post({"text": lines, "target_lang": "bb"})
        assert answer.status_code == 200, answer.text
        assert all("ja" in t["text"].split() for t in answer.json()["translations"])
        own = server.post({"text": lines, "target_lang": "aa"}).json()["translations"]
        assert not any("ja" in t["text"].split() for t in own)
        for body, words in (({"text": lines}, "translates into aa, bb"),
                            ({"text": lines, "target_lang": "<b>fr</b>"}, "is not a target language")):
            refused = server.post(body)
            assert refused.status_code == 422 and refused.json()["field"] == "target_lang", refused.text
            assert words in refused.json()["error"]
        page = httpx.get(server.url + "/", params={"text": lines[0], "target_lang": "bb"}, timeout=60)
        assert page.status_code == 200 and '<option value="bb" selected>' in page.text
        assert '<div id="translation" class="translation">ja' in page.text
        bad = httpx.get(server.url + "/", params={"text": lines[0], "target_lang": "<i>x"}, timeout=60)
        assert bad.status_code == 422 and "<i>x" not in bad.text and "&lt;i&gt;x" in bad.text
    finally:
        stop_server(server)


def test_attention_shows_the_tag_the_translation_was_made_with(two_targets: Path, toy_dir: Path, runner) -> None:
    text = (toy_dir / "dev.src").read_text().splitlines()[0]
    missing = runner.invoke(app, ["attention", "-m", str(two_targets), "--text", text])
    assert_one_line_error(missing, "--target-lang", "translates into aa, bb")
    from mt_cli.app.attention import attention_view
    from mt_cli.engines.opened import open_model_dir

    view = attention_view(open_model_dir(two_targets, decode_flags={"target_lang": "bb"}), text)
    assert view.cols[0] == "<2bb>" and view.cols[-1] == "</s>"  # the source as it was translated
    assert "ja" in view.translation.split()
    assert all(abs(row.sum() - 1.0) < 1e-3 for _, matrix in view.panels for row in matrix)


def test_tokenize_train_reserves_the_symbols_asked_for(toy_dir: Path, tmp_path: Path, runner) -> None:
    from mt_cli.core.tokenizer import SentencePieceModel

    inputs = ["-i", str(toy_dir / "train.src"), "-i", str(toy_dir / "train.tgt")]
    result = runner.invoke(app, ["tokenize", "train", *inputs,
                                 "--vocab-size", "48", "--model-prefix", str(tmp_path / "spm"),
                                 "--user-defined-symbols", "<2aa>, <bt>"])
    assert result.exit_code == 0, result.output
    spm = SentencePieceModel.load(tmp_path / "spm.model")
    assert {"<2aa>", "<bt>"} <= spm.unsplit_symbols()

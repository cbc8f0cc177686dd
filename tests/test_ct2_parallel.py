"""CTranslate2 decodes a file's batches side by side (one per core, one thread each), and a
server's or a stream's one at a time on every core: the same output either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt_cli.engines.ctranslate2 import CT2Translator


def test_batches_side_by_side_give_what_one_at_a_time_gives(trained_run: Path, toy_dir: Path) -> None:
    lines = (toy_dir / "test.src").read_text().splitlines() * 3
    flags = {"batch_size": 2, "n_best": 2, "compute_type": "float32"}  # 30 batches
    side_by_side = CT2Translator(trained_run, decode_flags=flags, threads=2, parallel_batches=True)
    one_at_a_time = CT2Translator(trained_run, decode_flags=flags, threads=2)
    assert side_by_side.translator.num_translators == 2 and one_at_a_time.translator.num_translators == 1
    found = side_by_side.translate_nbest(lines)
    expected = one_at_a_time.translate_nbest(lines)
    assert [[(h.text, round(h.score, 4)) for h in n] for n in found] == \
        [[(h.text, round(h.score, 4)) for h in n] for n in expected]
    assert len(found) == len(lines) and all(len(n) == 2 for n in found)


def test_a_file_decoded_with_batches_side_by_side_equals_its_stream(runner, trained_run: Path, toy_dir: Path) -> None:
    from mt_cli.cli.main import app

    source = toy_dir / "test.src"
    whole = runner.invoke(app, ["translate", "-m", str(trained_run), str(source), "--batch-size", "3"])
    streamed = runner.invoke(app, ["translate", "-m", str(trained_run), "--stream"], input=source.read_text())
    assert whole.exit_code == 0 and streamed.exit_code == 0, whole.output + streamed.output
    assert whole.stdout == streamed.stdout


def test_seeded_sampling_keeps_one_worker(trained_run: Path) -> None:
    """Each worker would draw from its own generator: sampling repeats only on one."""
    flags = {"sampling_topk": 5, "seed": 1, "compute_type": "float32"}
    sampler = CT2Translator(trained_run, decode_flags=flags, threads=2, parallel_batches=True)
    assert sampler.translator.num_translators == 1


def test_a_line_cut_at_its_length_limit_does_not_depend_on_its_batch(trained_run: Path, toy_dir: Path) -> None:
    """With short limits (half the source length) most lines stop at their own limit. CTranslate2
    stops a batch at one length: batched with a longer line, a short line's beam searched past
    its own limit and was cut afterwards, with another text or score than alone."""
    from mt_cli.engines.ctranslate2 import same_limit_batches

    lines = (toy_dir / "test.src").read_text().splitlines()
    lengths = {len(line.split()) for line in lines}
    assert len(lengths) > 2, "the test needs lines of several lengths"
    flags = {"max_length_a": 0.5, "max_length_b": 0, "beam_size": 4, "n_best": 2, "compute_type": "float32"}
    batched = CT2Translator(trained_run, decode_flags={**flags, "batch_size": 64}).translate_nbest(lines)
    alone = CT2Translator(trained_run, decode_flags={**flags, "batch_size": 1}).translate_nbest(lines)
    assert [[h.text for h in n] for n in batched] == [[h.text for h in n] for n in alone]
    # scores to float rounding (a batch's padded shapes), not to a longer search's other scores
    assert [h.score for n in batched for h in n] == pytest.approx([h.score for n in alone for h in n], abs=1e-3)
    assert same_limit_batches([[0, 1, 2, 3]], {0: 9, 1: 7, 2: 9, 3: 5}.__getitem__) == [[0, 2], [1], [3]]

"""`mt-cli tokenize train|encode|decode`: fixed special ids, 1 line in : 1 line out, exact round trips.

`tokenize train` mostly runs in a subprocess (`python -m mt_cli`), as a user runs it;
test_train_in_process_with_redirected_stderr covers CliRunner (stderr without a file
descriptor).

Vocabulary sizes: the toy corpus of conftest supports at most 54 unigram pieces joint and 38
per side, so `--vocab-size 64` (tiny_config's value) fails on it; these tests use 32.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sentencepiece as spm
from helpers import SHARED_MULTI30K, assert_one_line_error
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.textio import read_lines
from mt_cli.core.tokenizer import SentencePieceModel

TOY_VOCAB = 32


def mt(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (stderr is a real file descriptor there)."""
    return subprocess.run(check=False, args=[sys.executable, "-m", "mt_cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def processor(path: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(path))


def model_proto(path: Path):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    return proto


@pytest.fixture(scope="module")
def toy_model(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One joint unigram model on the toy corpus, shared by the encode/decode tests."""
    prefix = tmp_path_factory.mktemp("spm") / "toy"
    result = mt("tokenize", "train", "-i", toy_dir / "train.src", "-i", toy_dir / "train.tgt",
                "--vocab-size", TOY_VOCAB, "--model-prefix", prefix)
    assert result.returncode == 0, result.stderr
    return prefix.with_name("toy.model")


# ---------------------------------------------------------------- tokenize train


def test_train_joint_from_inputs(toy_model: Path) -> None:
    assert toy_model.is_file()
    assert toy_model.with_suffix(".vocab").is_file()
    sp = processor(toy_model)
    assert sp.get_piece_size() == TOY_VOCAB
    # both sides are in the one vocabulary: a source word and its made-up target word encode
    # without unknowns
    for text in ("the cat runs .", "eht taco snuro ."):
        assert sp.unk_id() not in sp.encode(text)


def test_train_reports_written_model(toy_dir: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "sub" / "dir" / "spm"  # parent directories are created
    result = mt("tokenize", "train", "-i", toy_dir / "train.src", "--vocab-size", TOY_VOCAB,
                "--model-prefix", prefix)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == f"wrote {prefix}.model\n"


def test_special_ids(toy_model: Path) -> None:
    sp = processor(toy_model)
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
    assert [sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert all(sp.is_control(i) for i in (0, 2, 3)) and sp.is_unknown(1)
    assert SentencePieceModel.load(toy_model).vocab_size == TOY_VOCAB  # the library's own check


def test_train_separate(toy_dir: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "sep"
    result = mt("tokenize", "train", "--separate", "-i", toy_dir / "train.src",
                "--target-input", toy_dir / "train.tgt", "--vocab-size", TOY_VOCAB,
                "--model-prefix", prefix)
    assert result.returncode == 0, result.stderr
    src, tgt = tmp_path / "sep.src.model", tmp_path / "sep.tgt.model"
    assert src.is_file() and tgt.is_file()
    assert not (tmp_path / "sep.model").exists()
    assert result.stderr == f"wrote {src}\nwrote {tgt}\n"
    src_pieces = {processor(src).id_to_piece(i) for i in range(TOY_VOCAB)}
    tgt_pieces = {processor(tgt).id_to_piece(i) for i in range(TOY_VOCAB)}
    assert src_pieces != tgt_pieces
    for path in (src, tgt):
        sp = processor(path)
        assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)


def test_train_separate_needs_both_sides(toy_dir: Path, tmp_path: Path) -> None:
    result = mt("tokenize", "train", "--separate", "-i", toy_dir / "train.src",
                "--vocab-size", TOY_VOCAB, "--model-prefix", tmp_path / "sep")
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "separate vocabularies need both source and target")


def test_train_from_config(toy_dir: Path, tiny_config: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "cfg" / "spm"
    result = mt("tokenize", "train", tiny_config, "--model-prefix", prefix,
                "--set", f"tokenizer.vocab_size={TOY_VOCAB}")
    assert result.returncode == 0, result.stderr
    sp = processor(prefix.with_name("spm.model"))
    assert sp.get_piece_size() == TOY_VOCAB  # the config's (overridden) vocab size
    assert sp.unk_id() not in sp.encode("eht taco snuro .")  # data.train targets were used


def test_train_from_config_uses_tokenizer_model_path(toy_dir: Path, tmp_path: Path) -> None:
    from helpers import tiny_config_text

    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_text(toy_dir, tokenizer={"vocab_size": 40, "model": "out/joint.model"}))
    result = mt("tokenize", "train", config)
    assert result.returncode == 0, result.stderr
    assert processor(tmp_path / "out" / "joint.model").get_piece_size() == 40


def test_train_needs_a_prefix(tiny_config: Path) -> None:
    result = mt("tokenize", "train", tiny_config)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "give --model-prefix PREFIX")


def test_train_needs_text(tmp_path: Path) -> None:
    result = mt("tokenize", "train", "--model-prefix", tmp_path / "x")
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "no training text: give --input FILE or a config with data.train")


def test_train_bpe(toy_dir: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "bpe"
    result = mt("tokenize", "train", "-i", toy_dir / "train.src", "-i", toy_dir / "train.tgt",
                "--vocab-size", TOY_VOCAB, "--model-type", "bpe", "--model-prefix", prefix)
    assert result.returncode == 0, result.stderr
    model = tmp_path / "bpe.model"
    proto = model_proto(model)
    assert proto.trainer_spec.model_type == proto.trainer_spec.BPE
    assert proto.trainer_spec.vocab_size == TOY_VOCAB
    sp = processor(model)
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
    assert sp.decode(sp.encode("the big dog eats .")) == "the big dog eats ."


def test_train_bad_model_type(toy_dir: Path, tmp_path: Path) -> None:
    result = mt("tokenize", "train", "-i", toy_dir / "train.src", "--model-type", "wordpiece",
                "--model-prefix", tmp_path / "x")
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "model type must be one of unigram, bpe, char, word, got 'wordpiece'")


def test_train_input_sentence_size(toy_dir: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "sampled"
    result = mt("tokenize", "train", "-i", toy_dir / "train.src", "-i", toy_dir / "train.tgt",
                "--vocab-size", TOY_VOCAB, "--input-sentence-size", 200, "--model-prefix", prefix)
    assert result.returncode == 0, result.stderr
    proto = model_proto(tmp_path / "sampled.model")
    assert proto.trainer_spec.input_sentence_size == 200  # < the 1200 toy lines: really samples
    assert processor(tmp_path / "sampled.model").get_piece_size() == TOY_VOCAB


def test_train_input_sentence_size_100(toy_dir: Path, tmp_path: Path) -> None:
    result = mt("tokenize", "train", "-i", toy_dir / "train.src", "-i", toy_dir / "train.tgt",
                "--vocab-size", TOY_VOCAB, "--input-sentence-size", 100,
                "--model-prefix", tmp_path / "sampled")
    # fixed either by training (sampling 100 lines) or by a clear up-front message
    if result.returncode != 0:
        assert_one_line_error(result.stderr, "input")
        assert "INTERNAL" not in result.stderr and "trainer_interface" not in result.stderr
    else:
        assert proto_size(tmp_path / "sampled.model") == 100


def proto_size(path: Path) -> int:
    return model_proto(path).trainer_spec.input_sentence_size


def test_train_vocab_too_large_for_the_data(toy_dir: Path, tmp_path: Path) -> None:
    result = mt("tokenize", "train", "-i", toy_dir / "train.src", "--vocab-size", 5000,
                "--model-prefix", tmp_path / "big")
    assert result.returncode == 1
    line = assert_one_line_error(result.stderr, "SentencePiece training failed",
                                 "Vocabulary size too high (5000)",
                                 "lower --vocab-size (tokenizer.vocab_size) or add more text")
    assert "vocab" in line.lower()
    assert not (tmp_path / "big.model").exists()


def test_train_missing_input(tmp_path: Path) -> None:
    missing = tmp_path / "absent.txt"
    result = mt("tokenize", "train", "-i", missing, "--vocab-size", TOY_VOCAB,
                "--model-prefix", tmp_path / "x")
    assert result.returncode == 1
    assert_one_line_error(result.stderr, str(missing))


def test_train_in_process_with_redirected_stderr(toy_dir: Path, tmp_path: Path,
                                                 runner: CliRunner) -> None:
    result = runner.invoke(app, ["tokenize", "train", "-i", str(toy_dir / "train.src"),
                                 "--vocab-size", str(TOY_VOCAB), "--model-prefix", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.model").is_file()
    assert result.stderr == f"wrote {tmp_path / 'x.model'}\n"  # no SentencePiece chatter


# ---------------------------------------------------------------- encode / decode


TEXT = ["the cat runs .", "a big red dog eats the ball .", "eht taco snuro ."]


def test_encode_decode_file_round_trip(toy_model: Path, toy_dir: Path, tmp_path: Path,
                                       runner: CliRunner) -> None:
    source = toy_dir / "dev.src"
    pieces, back = tmp_path / "dev.pieces", tmp_path / "dev.back"
    result = runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model), str(source), "-o", str(pieces)])
    assert (result.exit_code, result.output) == (0, ""), result.output
    assert all("▁" in line for line in read_lines(pieces))
    result = runner.invoke(app, ["tokenize", "decode", "-m", str(toy_model), str(pieces), "-o", str(back)])
    assert result.exit_code == 0, result.output
    assert back.read_bytes() == source.read_bytes()


def test_encode_decode_ids_file_round_trip(toy_model: Path, toy_dir: Path, tmp_path: Path,
                                           runner: CliRunner) -> None:
    source, ids, back = toy_dir / "dev.tgt", tmp_path / "ids.txt", tmp_path / "back.txt"
    assert runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model), "--ids", str(source),
                               "-o", str(ids)]).exit_code == 0
    sp = processor(toy_model)
    expected = [" ".join(map(str, row)) for row in sp.encode(read_lines(source))]
    assert read_lines(ids) == expected
    assert runner.invoke(app, ["tokenize", "decode", "-m", str(toy_model), "--ids", str(ids),
                               "-o", str(back)]).exit_code == 0
    assert back.read_bytes() == source.read_bytes()


def test_encode_decode_via_stdin(toy_model: Path, runner: CliRunner) -> None:
    sp = processor(toy_model)
    text = "".join(line + "\n" for line in TEXT)
    pieces = runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model)], input=text)
    assert pieces.exit_code == 0, pieces.output
    assert pieces.stdout == "".join(" ".join(p) + "\n" for p in sp.encode(TEXT, out_type=str))
    assert pieces.stderr == ""
    back = runner.invoke(app, ["tokenize", "decode", "-m", str(toy_model)], input=pieces.stdout)
    assert (back.exit_code, back.stdout) == (0, text)

    ids = runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model), "--ids"], input=text)
    assert ids.exit_code == 0
    assert ids.stdout == "".join(" ".join(map(str, row)) + "\n" for row in sp.encode(TEXT))
    back = runner.invoke(app, ["tokenize", "decode", "-m", str(toy_model), "--ids"], input=ids.stdout)
    assert (back.exit_code, back.stdout) == (0, text)


@pytest.mark.parametrize("ids", [False, True], ids=["pieces", "ids"])
def test_empty_lines_are_preserved(toy_model: Path, runner: CliRunner, ids: bool) -> None:
    text = "the cat .\n\n\nbig dog .\n\n"  # blanks in the middle and at the end
    flag = ["--ids"] if ids else []
    encoded = runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model), *flag], input=text)
    assert encoded.exit_code == 0, encoded.output
    lines = encoded.stdout.split("\n")
    assert lines[-1] == ""  # every output line ends with a newline
    lines = lines[:-1]
    assert len(lines) == 5
    assert [bool(line) for line in lines] == [True, False, False, True, False]
    decoded = runner.invoke(app, ["tokenize", "decode", "-m", str(toy_model), *flag], input=encoded.stdout)
    assert (decoded.exit_code, decoded.stdout) == (0, text)


def test_missing_final_newline_still_one_line(toy_model: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model), "--ids"], input="the cat")
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1
    assert result.stdout == " ".join(map(str, processor(toy_model).encode("the cat"))) + "\n"


def test_crlf_gives_the_same_ids_as_lf(toy_model: Path, runner: CliRunner, tmp_path: Path) -> None:
    lf = "".join(line + "\n" for line in TEXT)
    crlf = "".join(line + "\r\n" for line in TEXT)
    args = ["tokenize", "encode", "-m", str(toy_model), "--ids"]
    from_lf = runner.invoke(app, args, input=lf)
    from_crlf = runner.invoke(app, args, input=crlf)
    assert from_lf.exit_code == from_crlf.exit_code == 0
    assert from_crlf.stdout == from_lf.stdout
    path = tmp_path / "crlf.txt"
    path.write_bytes(crlf.encode())
    assert runner.invoke(app, [*args, str(path)]).stdout == from_lf.stdout


def test_output_option_writes_a_file(toy_model: Path, runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir" / "out.txt"
    result = runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model), "--ids", "-o", str(out)],
                           input="the cat .\n\nbig dog .\n")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    lines = read_lines(out)
    assert len(lines) == 3 and lines[1] == ""
    assert [p.name for p in out.parent.iterdir()] == ["out.txt"]  # no temp file left


def test_missing_model_file(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "absent.model"
    result = runner.invoke(app, ["tokenize", "encode", "-m", str(missing)], input="x\n")
    assert result.exit_code == 1
    assert result.stdout == ""
    line = assert_one_line_error(result.stderr, str(missing))
    assert line == f"error: {missing}: SentencePiece model not found"


def test_not_a_model_file(runner: CliRunner, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.model"
    bogus.write_text("not a model\n")
    result = runner.invoke(app, ["tokenize", "decode", "-m", str(bogus)], input="x\n")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"{bogus}: not a valid SentencePiece model")


def test_missing_input_file(toy_model: Path, runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "absent.txt"
    result = runner.invoke(app, ["tokenize", "encode", "-m", str(toy_model), str(missing)])
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"{missing}: file not found")


def test_bad_ids_input(toy_model: Path, runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["tokenize", "decode", "-m", str(toy_model), "--ids"],
                           input="5 6 7\n5 six 7\n")
    assert result.exit_code == 1
    line = assert_one_line_error(result.stderr)
    assert line == "error: <stdin>: --ids input must be space-separated integers"
    path = tmp_path / "ids.txt"
    path.write_text("1.5 2\n")
    result = runner.invoke(app, ["tokenize", "decode", "-m", str(toy_model), "--ids", str(path)])
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"{path}: --ids input must be space-separated integers")


def test_whitespace_normalization_on_toy_model(toy_model: Path) -> None:
    model = SentencePieceModel.load(toy_model)
    lines = ["the  cat   runs", "  the cat  ", "the\u00a0cat", "the\tcat"]
    assert model.decode_ids(model.encode_ids(lines)) == ["the cat runs", "the cat", "the cat", "the cat"]


# ---------------------------------------------------------------- real data (Multi30k)


needs_multi30k = pytest.mark.skipif(not (SHARED_MULTI30K / "train.en").is_file(),
                                    reason=f"Multi30k not found at {SHARED_MULTI30K}")


@pytest.fixture(scope="module")
def multi30k_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    prefix = tmp_path_factory.mktemp("m30k") / "spm"
    start = time.perf_counter()
    result = mt("tokenize", "train", "-i", SHARED_MULTI30K / "train.en", "-i", SHARED_MULTI30K / "train.de",
                "--vocab-size", 8000, "--model-type", "unigram", "--model-prefix", prefix)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    return prefix.with_name("spm.model"), seconds


@needs_multi30k
def test_multi30k_joint_8k_trains(multi30k_model: tuple[Path, float]) -> None:
    model, seconds = multi30k_model
    print(f"\nMulti30k joint 8k unigram tokenize train: {seconds:.1f} s")
    assert seconds < 120
    sp = processor(model)
    assert sp.get_piece_size() == 8000
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)


@needs_multi30k
@pytest.mark.parametrize("name", ["test2016.en", "test2016.de"])
def test_multi30k_round_trip_is_exact(multi30k_model: tuple[Path, float], tmp_path: Path,
                                      runner: CliRunner, name: str) -> None:
    model, _ = multi30k_model
    source = SHARED_MULTI30K / name
    ids, back = tmp_path / "ids", tmp_path / "back"
    assert runner.invoke(app, ["tokenize", "encode", "-m", str(model), "--ids", str(source),
                               "-o", str(ids)]).exit_code == 0
    assert runner.invoke(app, ["tokenize", "decode", "-m", str(model), "--ids", str(ids),
                               "-o", str(back)]).exit_code == 0
    original, decoded = read_lines(source), read_lines(back)
    assert len(original) == len(decoded) == 1000
    mismatches = [(i + 1, a, b) for i, (a, b) in enumerate(zip(original, decoded)) if a != b]
    assert mismatches == []
    assert "1" not in {x for line in read_lines(ids) for x in line.split()}  # no <unk>


@needs_multi30k
def test_multi30k_known_normalization_differences(multi30k_model: tuple[Path, float]) -> None:
    """NFKC (nmt_nfkc) is lossy by design: these are the documented differences."""
    model = SentencePieceModel.load(multi30k_model[0])
    lines = ["120\u00a0cm", "A  man   runs.", "  A dog runs.  ", "A dog runs."]
    assert model.decode_ids(model.encode_ids(lines)) == ["120 cm", "A man runs.", "A dog runs.",
                                                         "A dog runs."]

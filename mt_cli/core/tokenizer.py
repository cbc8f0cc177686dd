"""SentencePiece training, loading and encoding with fixed special ids.

The ids are fixed so the model and search code can rely on them:
pad=0 (padding, never produced), unk=1, bos=2 (target start), eos=3 (end of sentence).
Training reads text through `textio`, so CRLF, lone "\\r" and invalid UTF-8 are handled
exactly as by every other command.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mt_cli.core.batching import cut_rows
from mt_cli.core.errors import CheckpointError, DataError
from mt_cli.core.files import file_sha256, free_space
from mt_cli.core.quiet import native_stderr_captured
from mt_cli.core.textio import chunked, iter_lines

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe", "char", "word")
# A piece covers at most 16 characters (SentencePiece's max_sentencepiece_length); 64 leaves room
# for the whitespace normalisation drops. A line longer than max_length * this has more pieces
# than the model can read, and SentencePiece's memory grows ~55 bytes per character of a line.
CHARS_PER_PIECE = 64
log = logging.getLogger("mt_cli")


def line_char_limit(max_length: int) -> int:
    """Characters of a line worth tokenizing for a model of `max_length` positions."""
    return max_length * CHARS_PER_PIECE


def cut_lines(lines: list[str], max_chars: int, first_line: int, label: str = "line") -> list[str]:
    """`lines` cut to `max_chars` characters before SentencePiece sees them, each cut announced
    with its number (lines from the reader already are; requests and API callers are not)."""
    return cut_rows(lines, max_chars, first_line, label, "characters",
                    f"cut to {max_chars} (more than the model can read)")


def _spm():  # imported lazily: keeps `mt-cli --help` instant
    import sentencepiece

    return sentencepiece


def _sentences(inputs: Iterable[str | Path], lenient: bool) -> Iterator[str]:
    for path in inputs:
        for line in iter_lines(path, lenient):
            if line.strip():
                yield line


def train_sentencepiece(
    inputs: list[str | Path],
    model_prefix: str | Path,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    input_sentence_size: int = 0,
    lenient_utf8: bool = False,
    threads: int | None = None,
    user_defined_symbols: tuple[str, ...] | list[str] = (),
) -> Path:
    """Train a SentencePiece model on the non-empty lines of `inputs`; return the .model path.
    `user_defined_symbols` (tags) become pieces that are never split."""
    if not inputs:
        raise DataError("tokenizer training needs at least one input file")
    if model_type not in MODEL_TYPES:
        raise DataError(f"model type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")
    prefix = Path(model_prefix)
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{prefix.parent}: cannot create directory ({exc.strerror})") from None
    spm = _spm()
    options = dict(
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=threads or os.cpu_count() or 1,
        shuffle_input_sentence=True,
        hard_vocab_limit=model_type not in ("word",),
        max_sentence_length=1 << 16,
    )
    if 0 < input_sentence_size <= 100:
        raise DataError(f"input sentence size must be 0 (all) or > 100, got {input_sentence_size}")
    if input_sentence_size:
        options["input_sentence_size"] = input_sentence_size
    if model_type == "word":
        options["use_all_vocab"] = True
    if user_defined_symbols:
        options["user_defined_symbols"] = list(user_defined_symbols)
    with native_stderr_captured(replay=False):
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=_sentences(inputs, lenient_utf8), **options)
        except RuntimeError as exc:
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "failed"
            if "Vocabulary size is too high" in message or "vocab_size" in message:
                message += "; lower --vocab-size (tokenizer.vocab_size) or add more text"
            raise DataError(f"SentencePiece training failed: {message}") from None
    model = prefix.with_name(prefix.name + ".model")
    _check_written(model, spm)
    return model


def _check_written(model: Path, spm: object) -> None:
    """SentencePiece does not report a failed write (a full disk leaves a truncated file and
    no error): read the model back at once, so the error names the file and the free space."""
    try:
        spm.SentencePieceProcessor().LoadFromSerializedProto(model.read_bytes())  # type: ignore[attr-defined]
    except (OSError, RuntimeError):
        for written in (model, model.with_suffix(".vocab")):  # nothing half-written is left to be found
            written.unlink(missing_ok=True)
        raise DataError(f"{model}: SentencePiece could not write a readable model ({free_space(model)} free "
                        "there; a full disk?); free some space or write elsewhere") from None


@dataclass
class SentencePieceModel:
    """One loaded SentencePiece model with the line-level helpers the CLI needs."""

    path: Path
    processor: object

    @classmethod
    def load(cls, path: str | Path) -> SentencePieceModel:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: SentencePiece model not found")
        processor = _spm().SentencePieceProcessor()
        try:
            processor.Load(str(path))
        except (OSError, RuntimeError):
            raise CheckpointError(f"{path}: not a valid SentencePiece model") from None
        ids = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise CheckpointError(
                f"{path}: special ids pad/unk/bos/eos are {ids}, expected (0, 1, 2, 3); "
                "retrain it with `mt-cli tokenize train`")
        return cls(path, processor)

    @property
    def vocab_size(self) -> int:
        return int(self.processor.GetPieceSize())

    def encode_ids(self, lines: list[str]) -> list[list[int]]:
        return self.processor.Encode(lines, out_type=int)

    def encode_pieces(self, lines: list[str]) -> list[list[str]]:
        return self.processor.Encode(lines, out_type=str)

    def decode_ids(self, ids: list[list[int]]) -> list[str]:
        return self.processor.Decode(ids)

    def decode_pieces(self, pieces: list[list[str]]) -> list[str]:
        return self.processor.DecodePieces(pieces)

    def sha256(self) -> str:
        return file_sha256(self.path)

    def piece_id(self, piece: str) -> int:
        return int(self.processor.PieceToId(piece))

    def unsplit_symbols(self) -> set[str]:
        """Its user-defined pieces (SentencePiece never splits them, wherever they appear)."""
        from sentencepiece import sentencepiece_model_pb2  # protobuf, which TensorFlow brings

        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(self.path.read_bytes())
        user_defined = sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
        return {p.piece for p in proto.pieces if p.type == user_defined}

    def frequency_ranking(self) -> list[int]:
        """Piece ids from most to least frequent: SentencePiece scores are unigram
        log-probabilities (BPE: merge order), higher meaning more frequent."""
        scores = [self.processor.GetScore(i) for i in range(self.vocab_size)]
        return sorted(range(self.vocab_size), key=lambda i: -scores[i])


@dataclass
class Tokenizers:
    """Source and target models of a translation direction (the same object when joint)."""

    source: SentencePieceModel
    target: SentencePieceModel

    @classmethod
    def load(cls, source: str | Path, target: str | Path | None = None) -> Tokenizers:
        src = SentencePieceModel.load(source)
        return cls(src, SentencePieceModel.load(target) if target else src)

    @property
    def joint(self) -> bool:
        return self.source is self.target


def train_tokenizers(
    source_files: list[str | Path],
    target_files: list[str | Path],
    model_prefix: str | Path,
    joint: bool = True,
    **options: object,
) -> list[Path]:
    """Train one joint model (`prefix.model`) or two (`prefix.src.model`, `prefix.tgt.model`)."""
    prefix = Path(model_prefix)
    if joint:
        return [train_sentencepiece([*source_files, *target_files], prefix, **options)]  # type: ignore[arg-type]
    if not source_files or not target_files:
        raise DataError("separate vocabularies need both source and target training files")
    return [
        train_sentencepiece(source_files, prefix.with_name(prefix.name + ".src"), **options),  # type: ignore[arg-type]
        train_sentencepiece(target_files, prefix.with_name(prefix.name + ".tgt"), **options),  # type: ignore[arg-type]
    ]


def check_symbols(model: SentencePieceModel, symbols: list[str], key: str) -> None:
    """Every tag a config needs must be a user-defined piece of `model`: missing, it would be
    split into characters; an ordinary piece learned from text, it would collide with text."""
    if not symbols:
        return
    unsplit = model.unsplit_symbols()
    for symbol in symbols:
        if symbol in unsplit:
            continue
        if any(model.piece_id(piece) != UNK_ID for piece in (symbol, "\u2581" + symbol)):  # or word-initial
            raise DataError(f"{key}: {model.path} has {symbol!r} as an ordinary piece learned from text, which "
                            "the tag would collide with; train a SentencePiece model with it as a user-defined "
                            "symbol (leave tokenizer.model unset, or `mt-cli tokenize train --user-defined-symbols`)")
        raise DataError(f"{key}: {model.path} lacks the tag {symbol!r} the data needs; train a SentencePiece model "
                        "with it as a user-defined symbol (leave tokenizer.model unset, or `mt-cli tokenize train "
                        "--user-defined-symbols`)")


def transform_lines(lines: Iterable[str], fn: Callable[[list[str]], list[str]],
                    chunk: int = 4096) -> Iterator[str]:
    """Apply a list->list function to lines in chunks: streams big files, keeps 1 line : 1 line."""
    for block in chunked(lines, chunk):
        yield from fn(block)

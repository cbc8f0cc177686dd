"""`mt-cli tokenize train|encode|decode`: SentencePiece with the ids the models rely on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import SetOption, check_output_path, load

app = typer.Typer(
    help="Train SentencePiece models and encode/decode text (pad=0 unk=1 bos=2 eos=3).",
    no_args_is_help=True,
)

ModelOption = Annotated[Path, typer.Option("--model", "-m", help="SentencePiece .model file.")]
InputArg = Annotated[Path | None, typer.Argument(help="Input text file (default: stdin).")]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Output file (default: stdout).")]
IdsOption = Annotated[bool, typer.Option("--ids", help="Integer ids instead of pieces.")]


@app.command("train")
def train(
    config: Annotated[Path | None, typer.Argument(help="Config whose tokenizer/data sections to use.")] = None,
    input_: Annotated[list[Path] | None, typer.Option(
        "--input", "-i", help="Training text (repeatable; source side when --separate).",
    )] = None,
    target_input: Annotated[list[Path] | None, typer.Option(
        "--target-input", help="Target-side text for --separate.",
    )] = None,
    model_prefix: Annotated[Path | None, typer.Option(
        "--model-prefix", help="Writes PREFIX.model and PREFIX.vocab.",
    )] = None,
    vocab_size: Annotated[int | None, typer.Option("--vocab-size", min=8)] = None,
    model_type: Annotated[str | None, typer.Option("--model-type", help="unigram | bpe | char | word")] = None,
    character_coverage: Annotated[float | None, typer.Option("--character-coverage", min=0.0, max=1.0)] = None,
    input_sentence_size: Annotated[int | None, typer.Option(
        "--input-sentence-size", min=0, help="Sample this many sentences (0 = all).",
    )] = None,
    separate: Annotated[bool, typer.Option("--separate", help="Separate source/target vocabularies.")] = False,
    user_defined_symbols: Annotated[str | None, typer.Option(
        "--user-defined-symbols", help="Comma-separated pieces never split, such as tags: <2de>,<2fr>,<bt> "
        "(a config's own tags are added).",
    )] = None,
    set_: SetOption = None,
) -> None:
    """Train a joint (default) or separate SentencePiece model.

    \b
    Examples:
      mt-cli tokenize train -i train.en -i train.de --vocab-size 8000 --model-prefix spm
      mt-cli tokenize train configs/multi30k-en-de.yaml --model-prefix runs/spm
    """
    from mt_cli.core.config_loading import load_config
    from mt_cli.core.errors import ConfigError
    from mt_cli.core.languages import training_symbols
    from mt_cli.core.tokenizer import train_tokenizers

    cfg = load(config, set_) if config else load_config(None, set_ or [])
    tok = cfg.tokenizer
    sources = list(input_ or [])
    targets = list(target_input or [])
    if not sources and not targets:
        sources = [c.source for c in cfg.data.train]
        targets = [c.target for c in cfg.data.train]
    if not sources and not targets:
        raise ConfigError("no training text: give --input FILE or a config with data.train")
    joint = tok.joint and not separate
    if model_prefix is None:
        if tok.model:
            model_prefix = Path(str(tok.model).removesuffix(".model"))
        else:
            raise ConfigError("where to write the model? give --model-prefix PREFIX")
    paths = train_tokenizers(
        sources, targets, model_prefix, joint=joint,
        vocab_size=vocab_size or tok.vocab_size,
        model_type=model_type or tok.model_type,
        character_coverage=tok.character_coverage if character_coverage is None else character_coverage,
        input_sentence_size=tok.input_sentence_size if input_sentence_size is None else input_sentence_size,
        lenient_utf8=cfg.data.lenient_utf8,
        user_defined_symbols=[*training_symbols(cfg.data, tok),
                              *(s.strip() for s in (user_defined_symbols or "").split(",") if s.strip())],
    )
    for path in paths:
        console.info(f"wrote {path}")


def _run(model: Path, input_: Path | None, output: Path | None, fn_name: str, ids: bool) -> None:
    from mt_cli.core.textio import atomic_write_lines, iter_lines
    from mt_cli.core.tokenizer import SentencePieceModel, transform_lines

    check_output_path(output, "-o/--output")
    spm = SentencePieceModel.load(model)

    def encode(lines: list[str]) -> list[str]:
        if ids:
            return [" ".join(map(str, row)) for row in spm.encode_ids(lines)]
        return [" ".join(row) for row in spm.encode_pieces(lines)]

    def decode(lines: list[str]) -> list[str]:
        if ids:
            try:
                return spm.decode_ids([[int(x) for x in line.split()] for line in lines])
            except ValueError:
                from mt_cli.core.errors import DataError

                raise DataError(f"{input_ or '<stdin>'}: --ids input must be space-separated integers") from None
        return spm.decode_pieces([line.split() for line in lines])

    results = transform_lines(iter_lines(input_ or "-"), encode if fn_name == "encode" else decode)
    if output is not None:
        atomic_write_lines(output, results)
        return
    for line in results:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


@app.command("encode")
def encode(model: ModelOption, input_: InputArg = None, output: OutputOption = None, ids: IdsOption = False) -> None:
    """Text -> pieces (or --ids), one output line per input line; empty stays empty.

    Example: echo "Hello world." | mt-cli tokenize encode -m spm.model
    """
    _run(model, input_, output, "encode", ids)


@app.command("decode")
def decode(model: ModelOption, input_: InputArg = None, output: OutputOption = None, ids: IdsOption = False) -> None:
    """Pieces (or --ids) -> text, one output line per input line.

    Example: mt-cli tokenize decode -m spm.model --ids ids.txt -o text.txt
    """
    _run(model, input_, output, "decode", ids)

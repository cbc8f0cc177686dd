"""`mt-cli translate`: raw text in, detokenized translations out, one line per line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli.common import SetOption, start_tensorflow

_FLAG_KEYS = {
    "beam_size": "decode.beam_size", "n_best": "decode.n_best",
    "length_penalty": "decode.length_penalty", "coverage_penalty": "decode.coverage_penalty",
    "max_length_a": "decode.max_length_a", "max_length_b": "decode.max_length_b",
    "batch_size": "decode.batch_size", "batch_tokens": "decode.batch_tokens",
    "sampling_topk": "decode.sampling_topk", "sampling_topp": "decode.sampling_topp",
    "temperature": "decode.sampling_temperature", "seed": "decode.seed", "dtype": "decode.dtype",
}


def _format(index: int, nbest: list, fmt: str, with_scores: bool, n_best: int) -> list[str]:
    """Lines for one input; the layout follows the requested n_best, never the count found."""
    if fmt == "jsonl":
        best = nbest[0]
        record = {"index": index, "text": best.text, "score": best.score, "tokens": best.tokens}
        if n_best > 1:
            record["nbest"] = [{"text": h.text, "score": h.score, "tokens": h.tokens} for h in nbest]
        return [json.dumps(record, ensure_ascii=False)]
    if n_best > 1:
        return [f"{index} ||| {h.text} ||| {h.score:.4f}" for h in nbest]
    return [f"{nbest[0].score:.4f}\t{nbest[0].text}" if with_scores else nbest[0].text]


def translate(
    model: Annotated[Path, typer.Option("--model", "-m", help="Export directory, or a run directory (uses its export/).")],
    input_: Annotated[Path | None, typer.Argument(help="Source text file (default: stdin).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (default: stdout).")] = None,
    beam_size: Annotated[int | None, typer.Option("--beam-size", "-b", help="Beam width; 1 = greedy.")] = None,
    n_best: Annotated[int | None, typer.Option("--n-best", help="Hypotheses per line (text format: 'i ||| text ||| score').")] = None,
    length_penalty: Annotated[float | None, typer.Option("--length-penalty", help="GNMT alpha.")] = None,
    coverage_penalty: Annotated[float | None, typer.Option("--coverage-penalty", help="GNMT beta.")] = None,
    max_length_a: Annotated[float | None, typer.Option("--max-length-a", help="Max output = a * source length + b.")] = None,
    max_length_b: Annotated[int | None, typer.Option("--max-length-b")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Sentences per batch.")] = None,
    batch_tokens: Annotated[int | None, typer.Option("--batch-tokens", help="Source tokens per batch (instead of --batch-size).")] = None,
    sampling_topk: Annotated[int | None, typer.Option("--sampling-topk", help="Sample from the k best tokens (0 = search).")] = None,
    sampling_topp: Annotated[float | None, typer.Option("--sampling-topp", help="Nucleus sampling mass.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sampling temperature.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for sampling.")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32 (default) or bfloat16 compute.")] = None,
    with_scores: Annotated[bool, typer.Option("--with-scores", help="Prefix each line with its score and a tab.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="text or jsonl (text, score, tokens, n-best).")] = "text",
    prefix_file: Annotated[Path | None, typer.Option("--prefix-file", help="Target prefixes, one per line, to continue from.")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Translate and flush line by line (for pipes).")] = False,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads (0 = all cores).")] = 0,
    set_: SetOption = None,
) -> None:
    """Translate a file or stdin with a trained model; N lines in, N lines out.

    \b
    Examples:
      mt-cli translate -m runs/demo test.en -o test.hyp
      echo "A dog runs." | mt-cli translate -m runs/demo --beam-size 1
      mt-cli translate -m runs/demo test.en --n-best 4 --beam-size 4 --format jsonl
    """
    from mt_cli.errors import ConfigError, DataError
    from mt_cli.textio import atomic_write_lines, iter_lines, read_lines

    if fmt not in ("text", "jsonl"):
        raise ConfigError(f"--format: must be text or jsonl, got {fmt!r}")
    flags = {"beam_size": beam_size, "n_best": n_best, "length_penalty": length_penalty,
             "coverage_penalty": coverage_penalty, "max_length_a": max_length_a,
             "max_length_b": max_length_b, "batch_size": batch_size, "batch_tokens": batch_tokens,
             "sampling_topk": sampling_topk, "sampling_topp": sampling_topp,
             "temperature": temperature, "seed": seed, "dtype": dtype}
    overrides = [f"{_FLAG_KEYS[k]}={v}" for k, v in flags.items() if v is not None] + list(set_ or [])
    if beam_size is not None and n_best is None:
        overrides.insert(0, "decode.n_best=1")
    if stream:
        overrides.append("decode.batch_size=1")
        overrides.append("decode.batch_tokens=0")

    start_tensorflow()
    from mt_cli.translate import chunked, load_translator, set_threads

    set_threads(threads)
    translator = load_translator(model, overrides)
    source = input_ or "-"
    prefixes = read_lines(prefix_file) if prefix_file else None
    if prefixes is not None and input_ is not None:
        from mt_cli.textio import check_same_length

        check_same_length(input_, prefix_file)  # fail before translating anything

    def results():
        index = 0
        chunk_size = 1 if stream else 8192
        for chunk in chunked(iter_lines(source), chunk_size):
            chunk_prefixes = None
            if prefixes is not None:
                chunk_prefixes = prefixes[index:index + len(chunk)]
                if len(chunk_prefixes) != len(chunk):
                    raise DataError(f"{prefix_file} has {len(prefixes)} lines but {input_ or '<stdin>'} has more; "
                                    "give one prefix per input line (empty for none)")
            for offset, nbest in enumerate(translator.translate_nbest(chunk, chunk_prefixes, index + 1)):
                yield from _format(index + offset, nbest, fmt, with_scores, translator.decode.n_best)
            index += len(chunk)
        if prefixes is not None and index != len(prefixes):
            raise DataError(f"{prefix_file} has {len(prefixes)} lines but {input_ or '<stdin>'} has {index}")

    if output is not None:
        atomic_write_lines(output, results())
        return
    for line in results():
        sys.stdout.write(line + "\n")
        if stream:
            sys.stdout.flush()
    sys.stdout.flush()

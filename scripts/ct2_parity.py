#!/usr/bin/env python3
"""CTranslate2 export vs native engine on the same weights: greedy identity and BLEU.

Exports the model to CTranslate2 (float32 and int8), translates the input with both engines
greedily and with beam search, and prints one JSON document: the share of identical greedy
lines, BLEU of each engine and setting, and the differences that matter (beam-4 BLEU delta,
int8 vs float32 BLEU delta).

  python scripts/ct2_parity.py -m runs/multi30k-en-de -i test2016.en -r test2016.de
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from json_report import emit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", type=Path, required=True)
    parser.add_argument("--input", "-i", type=Path, required=True)
    parser.add_argument("--reference", "-r", type=Path, required=True)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", "-o", type=Path)
    args = parser.parse_args(argv)

    import sacrebleu

    from mt_cli.cli.common import start_tensorflow
    from mt_cli.core.textio import read_lines

    start_tensorflow()
    from mt_cli.engines.choice import open_translator
    from mt_cli.engines.ct2_convert import export_ctranslate2

    sources, refs = read_lines(args.input), read_lines(args.reference)
    greedy = ["decode.beam_size=1", "decode.n_best=1"]
    beam = [f"decode.beam_size={args.beam_size}", "decode.n_best=1"]
    bleu = lambda hyps: round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
    report: dict = {"model": str(args.model), "lines": len(sources), "beam_size": args.beam_size}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        engines = {"native": args.model}
        for quantization in ("float32", "int8"):
            engines[f"ctranslate2-{quantization}"] = export_ctranslate2(
                args.model, Path(tmp) / quantization, quantization)
        for name, directory in engines.items():
            for setting, overrides in (("greedy", greedy), ("beam", beam)):
                hyps = open_translator(directory, overrides, args.threads).translate(sources)
                outputs[name, setting] = hyps
                report[f"{name}_{setting}_bleu"] = bleu(hyps)
    same = sum(a == b for a, b in zip(outputs["native", "greedy"], outputs["ctranslate2-float32", "greedy"]))
    report["greedy_identical_share"] = round(same / len(sources), 4)
    report["beam_bleu_delta"] = round(report["ctranslate2-float32_beam_bleu"] - report["native_beam_bleu"], 2)
    report["int8_vs_float32_beam_bleu_delta"] = round(
        report["ctranslate2-int8_beam_bleu"] - report["ctranslate2-float32_beam_bleu"], 2)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

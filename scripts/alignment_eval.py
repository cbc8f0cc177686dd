#!/usr/bin/env python3
"""How well does each decoder layer's cross-attention align words? (picks --alignment-layer)

For every test line with a listed source noun whose listed translation appears in the
model's output, a hit is an alignment link between the two words. Prints, per layer, hits /
cases as JSON. The word list (data/alignment/nouns.en-de.tsv) was written for this check.

  python scripts/alignment_eval.py -m runs/multi30k-en-de -i test2016.en --out align.json
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from json_report import emit

REPO = Path(__file__).resolve().parents[1]


def load_nouns(path: Path) -> dict[str, set[str]]:
    nouns = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            source, targets = line.split("\t")
            nouns[source] = set(targets.split(","))
    return nouns


def words(text: str) -> list[str]:
    """Whitespace words with edge punctuation removed (matching only; indices are kept)."""
    return [re.sub(r"^\W+|\W+$", "", w) for w in text.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", type=Path, required=True)
    parser.add_argument("--input", "-i", type=Path, required=True)
    parser.add_argument("--nouns", type=Path, default=REPO / "data" / "alignment" / "nouns.en-de.tsv")
    parser.add_argument("--out", "-o", type=Path)
    args = parser.parse_args(argv)

    from mt_cli.cli.common import start_tensorflow
    from mt_cli.core.textio import read_lines

    start_tensorflow()
    from mt_cli.engines.choice import open_translator

    nouns, sources = load_nouns(args.nouns), read_lines(args.input)
    layers = len(open_translator(args.model).model.decoder_layers)
    report = {"model": str(args.model), "lines": len(sources), "layers": {}}
    for layer in range(layers):
        translator = open_translator(args.model, ["decode.alignments=true", f"decode.alignment_layer={layer}"])
        hits = cases = 0
        for source, nbest in zip(sources, translator.translate_nbest(sources)):
            src_words, out_words = words(source.lower()), words(nbest[0].text)
            links = set(nbest[0].alignment or [])
            for i, word in enumerate(src_words):
                targets = [j for j, w in enumerate(out_words) if w in nouns.get(word, ())]
                if targets:
                    cases += 1
                    hits += any((i, j) in links for j in targets)
        report["layers"][str(layer)] = {"hits": hits, "cases": cases, "share": round(hits / max(cases, 1), 4)}
    best = max(report["layers"], key=lambda k: report["layers"][k]["share"])
    report["best_layer"] = int(best)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

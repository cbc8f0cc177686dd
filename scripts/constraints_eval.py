#!/usr/bin/env python3
"""Terminology constraints on a test set: BLEU with and without, and the share of constraints met.

Each line's constraint is one noun of its reference: the longest capitalised word after the
first (German nouns are capitalised; the first word is skipped because every sentence starts
capitalised), edge punctuation removed; lines without one get no constraint. The constraints
file is written next to --out so the run can be repeated with `mt-cli translate`.

  python scripts/constraints_eval.py -m runs/multi30k-en-de -i test2016.en -r test2016.de --out bench/constraints.json
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from json_report import emit


def reference_noun(reference: str) -> str:
    """The longest capitalised word after the first, or '' (ties: the first one)."""
    words = [re.sub(r"^\W+|\W+$", "", w) for w in reference.split()[1:]]
    nouns = [w for w in words if len(w) > 1 and w[0].isupper()]
    return max(nouns, key=len) if nouns else ""


def as_whole_words(output: str, phrase: str) -> bool:
    """The phrase appears as whole words (a stricter check than the search promises: a
    constraint's pieces may be followed by more of the same word, e.g. Hund+es)."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", output) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", type=Path, required=True)
    parser.add_argument("--input", "-i", type=Path, required=True)
    parser.add_argument("--reference", "-r", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="decode.* overrides")
    parser.add_argument("--out", "-o", type=Path)
    args = parser.parse_args(argv)

    from mt_cli.cli.common import start_tensorflow
    from mt_cli.core.textio import read_lines

    start_tensorflow()
    from mt_cli.app.evaluate import score_corpus
    from mt_cli.engines.choice import open_translator

    sources, references = read_lines(args.input), read_lines(args.reference)
    constraints = [reference_noun(ref) for ref in references]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".constraints.tsv").write_text("".join(c + "\n" for c in constraints), encoding="utf-8")
    translator = open_translator(args.model, args.overrides)
    translator.translate(sources[:8])  # warm-up: compile both searches outside the timings
    translator.translate_nbest(sources[:8], constraints=constraints[:8])
    report: dict[str, object] = {"model": str(args.model), "lines": len(sources),
                                 "lines_with_constraint": sum(map(bool, constraints)), "runs": {}}
    for name, given in (("unconstrained", None), ("constrained", constraints)):
        start = time.perf_counter()
        outputs = [nbest[0].text for nbest in translator.translate_nbest(sources, constraints=given)]
        seconds = time.perf_counter() - start
        scores = score_corpus(outputs, [references], metrics=("bleu", "chrf"))
        hits = sum(c in out for out, c in zip(outputs, constraints) if c)
        whole = sum(as_whole_words(out, c) for out, c in zip(outputs, constraints) if c)
        report["runs"][name] = {
            "bleu": round(scores.scores["bleu"].score, 2), "chrf": round(scores.scores["chrf"].score, 2),
            "constraints_met": hits, "share_met": round(hits / max(1, report["lines_with_constraint"]), 4),
            "share_met_as_whole_words": round(whole / max(1, report["lines_with_constraint"]), 4),
            "seconds": round(seconds, 2), "sentences_per_s": round(len(sources) / seconds, 1),
            "signature": scores.scores["bleu"].signature}
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

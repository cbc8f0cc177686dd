#!/usr/bin/env python3
"""`translate --markup html` on a test set: what tags cost the translation, and whether they survive.

Each source line gets one or two words wrapped in `<b>...</b>` (deterministic: a listed noun
of data/alignment/nouns.en-de.tsv when the line has one, with the word before it on odd
lines; else a word chosen by the line number; trailing punctuation stays outside the tag).
The tagged file is translated by `mt-cli translate` four ways: the plain source (no tags, the
baseline), the tagged source as plain text (tags left to the model), `--markup html` (tags
placed by relative position, CTranslate2) and `--markup html --alignments` (placed by word
alignments, native engine). For each: BLEU by `mt-cli evaluate` of the tag-stripped output
against the plain output and against the reference; the share of lines whose tags survive
(exactly one `<b>` and one `</b>`, in that order); and, on lines whose tagged noun has a listed
translation that occurs once in the output, the share where that translation is inside the tag.

  python scripts/markup_eval.py -m /work/exp/ml/ende -i test2016.en -r test2016.de --out bench/markup.json
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_report import emit

REPO = Path(__file__).resolve().parents[1]
TAG = re.compile(r"<[^>]*>")
INSIDE = re.compile(r"<b>(.*?)</b>")


def load_nouns(path: Path) -> dict[str, set[str]]:
    nouns = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            source, targets = line.split("\t")
            nouns[source] = set(targets.split(","))
    return nouns


def tagged(line: str, number: int, nouns: dict[str, set[str]]) -> tuple[str, str]:
    """The line with one or two words in <b>...</b>, and the listed noun inside ('' if none)."""
    words = line.split()
    if not words:
        return line, ""
    bare = [re.sub(r"^\W+|\W+$", "", w).lower() for w in words]
    listed = [k for k, w in enumerate(bare) if w in nouns]
    if listed:
        last = listed[0]
        first = last - 1 if number % 2 and last > 0 else last
    else:
        first = number * 7 % len(words)
        last = min(first + number % 2, len(words) - 1)
    end = re.search(r"\W*$", words[last])
    core, tail = words[last][:end.start()] or words[last], words[last][end.start():] if end.start() else ""
    inner = " ".join([*words[first:last], core])
    out = " ".join([*words[:first], f"<b>{html.escape(inner, quote=False)}</b>{tail}", *words[last + 1:]])
    return out, bare[last] if listed else ""


def survives(line: str) -> bool:
    tags = TAG.findall(line)
    return tags == ["<b>", "</b>"]


def stripped(line: str) -> str:
    return " ".join(html.unescape(TAG.sub("", line)).split())


def mt_cli(*args: str) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mt_cli", "-q", *args], capture_output=True, text=True,
                          cwd=REPO, check=False)
    if done.returncode:
        raise SystemExit(f"mt-cli {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout, time.perf_counter() - started


def bleu(hypothesis: Path, reference: Path) -> float:
    out, _ = mt_cli("evaluate", "-r", str(reference), str(hypothesis), "--json", "--metrics", "bleu")
    return round(json.loads(out)["systems"][0]["scores"]["bleu"]["score"], 2)


def placed(outputs: list[str], nouns_in: list[str], nouns: dict[str, set[str]]) -> tuple[int, int]:
    """(cases, hits): lines whose tagged noun has one listed translation occurring once as a
    word of the output; a hit has it inside the <b> element."""
    cases = hits = 0
    for out, noun in zip(outputs, nouns_in):
        if not noun:
            continue
        words = [re.sub(r"^\W+|\W+$", "", w) for w in stripped(out).split()]
        found = [t for t in nouns[noun] if words.count(t) == 1]
        if len(found) != 1:
            continue
        cases += 1
        inside = INSIDE.search(out)
        hits += bool(inside) and found[0] in [re.sub(r"^\W+|\W+$", "", w) for w in TAG.sub("", inside.group(1)).split()]
    return cases, hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", type=Path, required=True)
    parser.add_argument("--input", "-i", type=Path, required=True)
    parser.add_argument("--reference", "-r", type=Path, required=True)
    parser.add_argument("--nouns", type=Path, default=REPO / "data" / "alignment" / "nouns.en-de.tsv")
    parser.add_argument("--out", "-o", type=Path)
    args = parser.parse_args(argv)

    nouns = load_nouns(args.nouns)
    sources = args.input.read_text(encoding="utf-8").splitlines()
    pairs = [tagged(line, n, nouns) for n, line in enumerate(sources)]
    work = Path(tempfile.mkdtemp(prefix="markup-eval-"))
    source_file = work / "tagged.en"
    source_file.write_text("".join(t + "\n" for t, _ in pairs), encoding="utf-8")
    runs = {"plain": (args.input, []), "tags_as_text": (source_file, []),
            "markup_position": (source_file, ["--markup", "html"]),
            "markup_alignments": (source_file, ["--markup", "html", "--alignments"])}
    report: dict[str, object] = {"model": str(args.model), "lines": len(sources),
                                 "tagged_with_listed_noun": sum(bool(n) for _, n in pairs), "runs": {}}
    plain_file = work / "plain.de"
    for name, (given, flags) in runs.items():
        text, seconds = mt_cli("translate", "-m", str(args.model), str(given), *flags)
        outputs = text.split("\n")[:-1]
        hyp = work / f"{name}.de"
        hyp.write_text(text, encoding="utf-8")
        if name == "plain":
            plain_file = hyp
        clean = work / f"{name}.stripped.de"
        clean.write_text("".join(stripped(o) + "\n" for o in outputs), encoding="utf-8")
        cases, hits = placed(outputs, [n for _, n in pairs], nouns)
        report["runs"][name] = {  # type: ignore[index]
            "flags": " ".join(flags), "lines_out": len(outputs), "seconds": round(seconds, 1),
            "bleu_vs_plain_output": bleu(clean, plain_file), "bleu_vs_reference": bleu(clean, args.reference),
            "tags_survive": round(sum(map(survives, outputs)) / max(1, len(outputs)), 4),
            "noun_cases": cases, "noun_inside_tag": round(hits / max(1, cases), 4)}
    report["work_dir"] = str(work)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

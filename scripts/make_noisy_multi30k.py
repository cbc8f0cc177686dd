#!/usr/bin/env python3
"""Build a noisy English->German copy of Multi30k with a label per line, to measure `mt-cli data clean`.

All 29,000 training pairs are kept, in their order, and labelled `clean`; noise pairs made from
the corpus itself are inserted at random positions (deterministic for a --seed):

    duplicate       an exact copy of a training pair (whichever occurrence comes first is labelled
                    `clean`, the later one `duplicate`: the cleaner keeps the first)
    swapped         German source, English target (the pair's columns swapped)
    copy            target = the English source
    truncated       German target cut to 10-40% of its characters, at a word boundary
    glued           target = the pair's German and another pair's German joined by a space
    junk            URL, number, punctuation or markup lines, on the target side (half the time
                    on both sides)
    wrong_language  the French of train.fr in place of the German target
    test_overlap    test2016 pairs (a third of them with case or spacing changed)

    python scripts/make_noisy_multi30k.py --data /work/shared/data/multi30k --out /work/exp/noisy

Writes OUT/train.en, OUT/train.de, OUT/labels.txt (one label per line) and OUT/details.tsv
(line, label, where the pair comes from, what was done), each written to a temporary name and
renamed, then OUT/READY. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

KINDS = ("duplicate", "swapped", "copy", "truncated", "glued", "junk", "wrong_language", "test_overlap")
DEFAULT_COUNTS = {"duplicate": 600, "swapped": 400, "copy": 400, "truncated": 500, "glued": 500,
                  "junk": 500, "wrong_language": 500, "test_overlap": 500}

Pair = tuple[str, str, str, str]  # source, target, label, detail


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n") for line in f]


def truncate(text: str, rng: random.Random) -> tuple[str, float]:
    """`text` cut to 10-40% of its characters, at the last word boundary before the cut (at least one word)."""
    fraction = rng.uniform(0.10, 0.40)
    limit = max(1, int(len(text) * fraction))
    words, kept = text.split(), []
    for word in words:
        if kept and len(" ".join([*kept, word])) > limit:
            break
        kept.append(word)
    return " ".join(kept), fraction


def junk_line(rng: random.Random) -> str:
    host = rng.choice(["www.example.com", "img.flickr-cdn.net", "shop.example.de", "cdn.example.org"])
    number = lambda: str(rng.randint(0, 99999))
    makers: list[Callable[[], str]] = [
        lambda: f"http://{host}/{number()}/{number()}.jpg",
        lambda: f"https://{host}/p?id={number()}&ref={number()}",
        lambda: f"www.{host.split('.', 1)[1]}/{number()}",
        lambda: " ".join(number() for _ in range(rng.randint(2, 6))),
        lambda: f"{rng.randint(1, 31)}.{rng.randint(1, 12)}.{rng.randint(1990, 2024)} {number()}",
        lambda: f"+49 {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}",
        lambda: rng.choice(["...", "!!!", "???", "---", "* * *", "###", "(...)", "= = =", "-- --"]),
        lambda: "".join(rng.choice("!?.,;:-_*#~/|") for _ in range(rng.randint(3, 15))),
        lambda: rng.choice(["<br/>", "<br><br>", "&nbsp;&nbsp;", "<p></p>", "<td>&nbsp;</td>",
                            "<div class=\"x\"></div>", "</span></div>", "<hr/>", "&amp;&amp;"]),
        lambda: f"<img src=\"/{number()}.png\"/>",
    ]
    return rng.choice(makers)()


def vary(text: str, rng: random.Random) -> tuple[str, str]:
    """`text` as it is, lowercased, or with doubled spaces (what the overlap rule must see through)."""
    way = rng.choice(["exact", "exact", "lower", "spaces"])
    if way == "lower":
        return text.lower(), way
    if way == "spaces":
        return "  ".join(text.split()) + " ", way
    return text, way


def make_noise(en: list[str], de: list[str], fr: list[str], test_en: list[str], test_de: list[str],
               counts: dict[str, int], rng: random.Random) -> list[Pair]:
    n = len(en)
    seen: dict[tuple[str, str], int] = {}
    for i in range(n):
        seen[(en[i], de[i])] = seen.get((en[i], de[i]), 0) + 1
    unique = [i for i in range(n) if seen[(en[i], de[i])] == 1]
    noise: list[Pair] = []
    for i in rng.sample(unique, counts["duplicate"]):
        noise.append((en[i], de[i], "duplicate", f"train:{i}"))
    for i in rng.sample(range(n), counts["swapped"]):
        noise.append((de[i], en[i], "swapped", f"train:{i}"))
    for i in rng.sample(range(n), counts["copy"]):
        noise.append((en[i], en[i], "copy", f"train:{i}"))
    for i in rng.sample(range(n), counts["truncated"]):
        cut, fraction = truncate(de[i], rng)
        noise.append((en[i], cut, "truncated", f"train:{i}\tfraction={fraction:.2f}"))
    for i in rng.sample(range(n), counts["glued"]):
        j = rng.randrange(n)
        noise.append((en[i], f"{de[i]} {de[j]}", "glued", f"train:{i}+{j}"))
    for i in rng.sample(range(n), counts["junk"]):
        both = rng.random() < 0.5
        noise.append((junk_line(rng) if both else en[i], junk_line(rng), "junk",
                      "both sides" if both else f"train:{i} target"))
    for i in rng.sample(range(n), counts["wrong_language"]):
        noise.append((en[i], fr[i], "wrong_language", f"train:{i} fr"))
    for i in rng.sample(range(len(test_en)), counts["test_overlap"]):
        source, way = vary(test_en[i], rng)
        target, _ = vary(test_de[i], rng) if way != "exact" else (test_de[i], way)
        noise.append((source, target, "test_overlap", f"test2016:{i} {way}"))
    return noise


def mix(en: list[str], de: list[str], noise: list[Pair], rng: random.Random) -> list[Pair]:
    """The clean pairs in order with the noise at random places; the first of a duplicated pair is `clean`."""
    total = len(en) + len(noise)
    rng.shuffle(noise)
    noise_at = sorted(rng.sample(range(total), len(noise)))
    out: list[Pair] = []
    clean, k = iter(range(len(en))), 0
    for position in range(total):
        if k < len(noise) and noise_at[k] == position:
            out.append(noise[k])
            k += 1
        else:
            i = next(clean)
            out.append((en[i], de[i], "clean", f"train:{i}"))
    first: dict[tuple[str, str], int] = {}
    for position, (source, target, label, _) in enumerate(out):
        if label in ("clean", "duplicate"):
            first.setdefault((source, target), position)
    for position, (source, target, label, detail) in enumerate(out):
        if label == "duplicate":
            original = first[(source, target)]
            if original != position:  # the copy came after the original: as made
                continue
            # the copy comes first: it is the one the cleaner keeps, so it is the clean one
            later = next(p for p in range(position + 1, total)
                         if out[p][:2] == (source, target) and out[p][2] == "clean")
            out[position] = (source, target, "clean", out[later][3])
            out[later] = (source, target, "duplicate", detail)
    return out


def write_atomic(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="Multi30k directory with train.{en,de,fr} and test2016.{en,de}")
    parser.add_argument("--out", type=Path, required=True, help="output directory (made if missing)")
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every noise count by this")
    args = parser.parse_args(argv)

    try:
        en, de, fr = (read_lines(args.data / f"train.{lang}") for lang in ("en", "de", "fr"))
        test_en, test_de = (read_lines(args.data / f"test2016.{lang}") for lang in ("en", "de"))
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not len(en) == len(de) == len(fr) or len(test_en) != len(test_de):
        print("error: the files are not line-aligned", file=sys.stderr)
        return 1
    if any("\r" in line for line in (*en, *de, *fr, *test_en, *test_de)):
        print("error: a line holds a carriage return (CRLF files?)", file=sys.stderr)
        return 1
    counts = {kind: round(count * args.scale) for kind, count in DEFAULT_COUNTS.items()}
    rng = random.Random(args.seed)
    pairs = mix(en, de, make_noise(en, de, fr, test_en, test_de, counts, rng), rng)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "READY").unlink(missing_ok=True)
    write_atomic(args.out / "train.en", [p[0] for p in pairs])
    write_atomic(args.out / "train.de", [p[1] for p in pairs])
    write_atomic(args.out / "labels.txt", [p[2] for p in pairs])
    write_atomic(args.out / "details.tsv", ["line\tlabel\tdetail"] +
                 [f"{n}\t{p[2]}\t{p[3]}" for n, p in enumerate(pairs, 1)])
    (args.out / "READY").write_text(f"seed={args.seed} pairs={len(pairs)}\n", encoding="utf-8")
    tally = {kind: sum(p[2] == kind for p in pairs) for kind in ("clean", *KINDS)}
    print(f"{len(pairs)} pairs in {args.out}: " + ", ".join(f"{k} {v}" for k, v in tally.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Score models on Multi30k test2016 per target language and count how many outputs are in the
language asked for (py3langid, as `mt-cli data` uses it, among the common languages). Every
translation is a real `mt-cli evaluate -m` command; prints one JSON document.

  python scripts/multilingual_eval.py --data ../shared/data/multi30k \\
      --model en-de=runs/ende:de --model en-defr=runs/endefr:de,fr --out results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

MT_CLI = [sys.executable, "-m", "mt_cli", "-q"]


def machine() -> dict[str, object]:
    """The CPU the figures come from: its model name and the flags that matter here."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"cpu": fields.get("Model name", platform.processor()).strip(), "cores": fields.get("CPU(s)", "").strip(),
            "flags": [f for f in wanted if f in flags]}


def score(model: str, data: Path, lang: str, work: Path) -> dict[str, object]:
    """test2016 BLEU/chrF of `model` into `lang` (beam 4, as the preset decodes), and the
    share of its lines identified as `lang`."""
    from mt_cli.core.clean_settings import COMMON_LANGUAGES
    from mt_cli.core.langid import Identifier

    hyp = work / f"{Path(model).name}.{lang}"
    command = ["evaluate", "-m", model, "-s", str(data / "test2016.en"), "-r", str(data / f"test2016.{lang}"),
               "--metrics", "bleu,chrf", "--json", "--save-hyp", str(hyp), "--set", "decode.beam_size=4",
               "--target-lang", lang]
    done = subprocess.run([*MT_CLI, *command], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"mt-cli {' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    scores = json.loads(done.stdout)["systems"][0]["scores"]
    identify = Identifier(tuple(dict.fromkeys(("en", "de", "fr", *COMMON_LANGUAGES))), 0.0, 1)
    lines = hyp.read_text(encoding="utf-8").splitlines()
    named = [identify.identify(line)[0] for line in lines]
    return {"bleu": round(scores["bleu"]["score"], 2), "chrf": round(scores["chrf"]["score"], 2),
            "bleu_signature": scores["bleu"]["signature"], "lines": len(lines),
            "in_asked_language": round(100 * sum(n == lang for n in named) / max(1, len(lines)), 2),
            "other_languages": {code: named.count(code) for code in sorted(set(named)) if code != lang},
            "command": "mt-cli " + " ".join(command)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with test2016.{en,de,fr}")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR:LANG[,LANG]",
                        help="a model (run directory) and the target languages to score")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.model:
            name, rest = spec.split("=", 1)
            directory, langs = rest.rsplit(":", 1)
            results[name] = {lang: score(directory, args.data, lang, Path(tmp)) for lang in langs.split(",")}
    document = {"machine": machine(), "data": "Multi30k test2016 (1,000 lines)", "results": results}
    text = json.dumps(document, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

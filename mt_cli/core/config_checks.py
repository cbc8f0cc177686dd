"""Typed sections from raw YAML values, and the rules that span keys: every problem one line
naming the key (or the flag that gave the value), the value, the rule and the file."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any

from mt_cli.core.config import Config, DecodeConfig, decode_flag
from mt_cli.core.errors import ConfigError, clip, show_value
from mt_cli.core.files import human_size
from mt_cli.core.languages import RESERVED_PIECES, check_language_code, corpus_languages
from mt_cli.core.model_size import available_memory, size_terms
from mt_cli.core.textio import reads_once

SCIENTIFIC_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")  # YAML 1.1 reads 1e-9 (no dot) as a string


def describe(value: Any) -> str:
    return f"{show_value(value)} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _where(origin: str) -> str:
    """` (origin)` after a message, or nothing when the name at fault says where it came from."""
    return f" ({origin})" if origin else ""


def _check_scalar(key: str, value: Any, tp: Any, meta: dict[str, Any], origin: str) -> Any:
    if tp is float and isinstance(value, str) and SCIENTIFIC_NUMBER.match(value):
        value = float(value)  # YAML 1.1 reads 1e-9 (no dot) as a string
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {describe(value)}{_where(origin)}", key)
    says = meta.get("says")
    if tp is float:
        value = float(value)
        if not math.isfinite(value):  # no option has a meaning at inf or nan (YAML .inf, a flag's 'inf')
            raise ConfigError(f"{key}: must be {says or 'a finite number'}, got {show_value(value)}{_where(origin)}",
                              key)
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        hint = difflib.get_close_matches(clip(str(value)), [str(c) for c in choices], n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"{key}: must be one of {', '.join(map(str, choices))}, got {show_value(value)}{extra}{_where(origin)}",
            key)
    for rule, test, words in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                              ("le", lambda v, b: v <= b, "<=")):
        bound = meta.get(rule)
        if bound is not None and not test(value, bound):
            raise ConfigError(f"{key}: must be {says or f'{words} {bound}'}, got {show_value(value)}{_where(origin)}",
                              key)
    return value


def check_fields(values: Any, name: Callable[[str], str]) -> None:
    """Every field of dataclass instance `values` checked by its rules (`rule_field`), as a
    config's are; a message names the field as `name` does (a flag, for `mt-cli serve`)."""
    hints = typing.get_type_hints(type(values))
    for fld in dataclasses.fields(values):
        _convert(name(fld.name), getattr(values, fld.name), hints[fld.name], dict(fld.metadata), "")


def _build(cls: type, raw: Any, prefix: str, origin: str) -> Any:
    """Build dataclass `cls` from a dict, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {describe(raw)} ({origin})")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            dotted = clip(f"{prefix}.{key}" if prefix else str(key))
            hint = difflib.get_close_matches(clip(str(key)), list(fields), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"{dotted}: unknown key{extra} ({origin})")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        if name not in raw:
            continue
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _convert(key, raw[name], hints[name], dict(fld.metadata), origin)
    return cls(**values)


def _convert(key: str, value: Any, tp: Any, meta: dict[str, Any], origin: str) -> Any:
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: must not be null ({origin})")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, origin)
    if typing.get_origin(tp) is tuple:
        item_tp = typing.get_args(tp)[0]
        if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_convert(f"{key}[{i}]", v, item_tp, meta, origin) for i, v in enumerate(value))
    return _check_scalar(key, value, tp, meta, origin)


class DecodeNames:
    """How messages name decode options: the ones given as typed values by what the user typed
    (a flag, a request field), the others by their dotted key followed by `origin`."""

    def __init__(self, given: Mapping[str, str] | None = None, origin: str = "") -> None:
        self.given = dict(given or {})
        self.origin = origin

    def __call__(self, name: str) -> str:
        return self.given.get(name, f"decode.{name}")

    def where(self, *names: str) -> str:
        """` (origin)` unless every option named was typed by the user (its name says where)."""
        return "" if all(n in self.given for n in names) else _where(self.origin)


def flag_names(values: Mapping[str, Any], origin: str = "") -> DecodeNames:
    """Names for values given as CLI flags: each field's flag (DecodeConfig metadata)."""
    return DecodeNames({name: decode_flag(name) for name in values}, origin)


def _typed_decode(base: DecodeConfig, values: Mapping[str, Any], names: DecodeNames) -> DecodeConfig:
    """`base` with typed `values` (by field name), each checked by its field's rule, no YAML
    in between: a message names the value as `names` does."""
    fields = {f.name: f for f in dataclasses.fields(DecodeConfig)}
    hints = typing.get_type_hints(DecodeConfig)
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in fields:
            raise ConfigError(f"{names(name)}: not a decode option; valid: {', '.join(fields)}", names(name))
        checked[name] = _convert(names(name), value, hints[name], dict(fields[name].metadata), "")
    return dataclasses.replace(base, **checked)


def _check_decode(d: DecodeConfig, names: DecodeNames) -> None:
    """Rules across decode fields, for a config file and per-call options alike."""
    if d.n_best > d.beam_size:
        key = names("n_best")
        raise ConfigError(f"{key}: must be <= {names('beam_size')}={d.beam_size}, got {d.n_best}"
                          f"{names.where('n_best', 'beam_size')}", key)


def _one_best_by_default(values: Mapping[str, Any], named: Collection[str]) -> dict[str, Any]:
    """`values` with the rule of typed decode values: a beam size given alone asks for one best
    (unless `n_best` is given too, or `named` elsewhere, as a `--set`), so that the n_best
    saved with a model cannot clash with a narrower beam asked for."""
    values = dict(values)
    if "beam_size" in values and "n_best" not in values and "n_best" not in named:
        values["n_best"] = 1
    return values


def decode_with(base: DecodeConfig, values: Mapping[str, Any], names: DecodeNames,
                named: Collection[str] = ()) -> DecodeConfig:
    """`base` with typed `values` applied under DecodeConfig's rules (each field's, then those
    across fields, a beam size alone meaning one best): per-call options get the checks a
    config file gets, from this one place; `named` are fields given another way (`--set`)."""
    decode = _typed_decode(base, _one_best_by_default(values, named), names)
    _check_decode(decode, names)
    return decode


def _cross_check(cfg: Config, names: DecodeNames | None = None) -> None:
    """Rules that involve several fields (`names` names the decode options given as flags)."""
    m, t, tok = cfg.model, cfg.train, cfg.tokenizer
    o = cfg.origin
    if m.hidden_dim % m.num_heads:
        raise ConfigError(
            f"model.num_heads: must divide model.hidden_dim={m.hidden_dim}, got {m.num_heads} ({o})")
    _check_decode(cfg.decode, names or DecodeNames({}, o))
    _check_memory(cfg)
    if m.share_embeddings == "all" and not tok.joint:
        raise ConfigError(
            f"model.share_embeddings: 'all' needs tokenizer.joint=true (one vocabulary); "
            f"use 'target' or 'none' for separate vocabularies ({o})")
    if 0 < tok.input_sentence_size <= 100:
        raise ConfigError(f"tokenizer.input_sentence_size: must be 0 (use all) or > 100 "
                          f"(SentencePiece's minimum), got {tok.input_sentence_size} ({o})")
    if tok.target_model and tok.joint:
        raise ConfigError(f"tokenizer.target_model: only used when tokenizer.joint=false ({o})")
    if t.strategy == "multi_worker" and not tok.model:
        raise ConfigError(
            "tokenizer.model: train.strategy=multi_worker needs a SentencePiece model trained "
            f"beforehand (mt-cli tokenize train), so that workers do not race to train one ({o})")
    if t.effective_batch_tokens and t.effective_batch_tokens < t.batch_tokens:
        raise ConfigError(
            f"train.effective_batch_tokens: must be 0 or >= train.batch_tokens={t.batch_tokens}, "
            f"got {t.effective_batch_tokens} ({o})")
    named = [(f"data.train[{i}]", c) for i, c in enumerate(cfg.data.train)]
    named += [(f"data.{k}", getattr(cfg.data, k)) for k in ("dev", "test") if getattr(cfg.data, k)]
    for key, corpus in named:
        if not corpus.source or not corpus.target:
            raise ConfigError(f"{key}: needs both 'source' and 'target' files ({o})")


def _check_memory(cfg: Config) -> None:
    """The model's weights and position table must fit in this machine's memory (checked
    before anything is allocated; the vocabulary is the configured size)."""
    m = cfg.model
    terms = size_terms(m.encoder_layers, m.decoder_layers, m.hidden_dim, m.ffn_dim, m.max_length,
                       cfg.tokenizer.vocab_size, m.share_embeddings)
    needed = sum(t.nbytes for t in terms)
    available, source = available_memory()
    if not available or needed <= available:
        return
    largest = max(terms, key=lambda t: t.nbytes)
    key = largest.keys[0]
    raise ConfigError(f"{key}: the model needs about {human_size(needed)} for its weights and position table "
                      f"(mostly {largest.what}: {human_size(largest.nbytes)}), more than the "
                      f"{human_size(available)} of memory available ({source}); lower {' or '.join(largest.keys)}"
                      f"{_where(cfg.origin)}", key)


def check_for_training(cfg: Config) -> None:
    """Rules that only matter when training (a model directory's config stays loadable)."""
    o, m, t = cfg.origin, cfg.model, cfg.train
    for key in ("max_source_tokens", "max_target_tokens"):
        value = getattr(cfg.data, key)
        if value > m.max_length:
            raise ConfigError(
                f"data.{key}: must be <= model.max_length={m.max_length} (the model has no "
                f"positions beyond it), got {value}; lower it or raise model.max_length ({o})")
    if t.average_last > t.keep_last:
        raise ConfigError(
            f"train.average_last: must be <= train.keep_last={t.keep_last} (only that many step "
            f"checkpoints are kept to average), got {t.average_last}; raise train.keep_last ({o})")
    _check_rereadable(cfg)
    _check_languages(cfg)


def _check_languages(cfg: Config) -> None:
    """Language codes go into tags and file names; the dev set's target must be one the model
    learns; the symbols reserved for tags must be pieces a user could not mean otherwise."""
    d, o = cfg.data, cfg.origin
    check_language_code(d.source_lang, "data.source_lang", o)
    check_language_code(d.target_lang, "data.target_lang", o)
    named = [(f"data.train[{i}]", c) for i, c in enumerate(d.train)]
    named += [(f"data.{k}", getattr(d, k)) for k in ("dev", "test") if getattr(d, k)]
    for key, corpus in named:
        for side in ("source_lang", "target_lang"):
            if getattr(corpus, side):
                check_language_code(getattr(corpus, side), f"{key}.{side}", o)
    for key in ("dev", "test"):
        corpus = getattr(d, key)
        if corpus is not None and corpus.tag:
            raise ConfigError(f"data.{key}.tag: only training corpora are tagged, got {corpus.tag!r} ({o})",
                              f"data.{key}.tag")
    languages = corpus_languages(d.train, d.source_lang, d.target_lang)
    if d.dev is not None and languages.tagged:
        target = d.dev.target_lang or d.target_lang
        if target not in languages.targets:
            raise ConfigError(f"data.dev.target_lang: {target!r} is not a target language of data.train "
                              f"({', '.join(languages.targets)}); set data.dev.target_lang ({o})",
                              "data.dev.target_lang")
    for i, symbol in enumerate(cfg.tokenizer.user_defined_symbols):
        if not symbol.strip() or symbol != symbol.strip() or symbol in RESERVED_PIECES:
            raise ConfigError(f"tokenizer.user_defined_symbols[{i}]: {symbol!r} cannot be a symbol (empty, "
                              f"spaced, or one of {', '.join(RESERVED_PIECES)}) ({o})",
                              f"tokenizer.user_defined_symbols[{i}]")


def _check_rereadable(cfg: Config) -> None:
    """Training reads each data file more than once (tokenizer, cache key, encoding): a pipe or
    FIFO would be empty (or block) the second time, so it is refused before anything is read."""
    named = [(f"data.train[{i}]", c) for i, c in enumerate(cfg.data.train)]
    named += [("data.dev", cfg.data.dev)] if cfg.data.dev else []
    for key, corpus in named:
        for side in ("source", "target"):
            path = getattr(corpus, side)
            if path and reads_once(path):
                raise ConfigError(f"{key}.{side}: {path} is not a regular file (a pipe, FIFO or stdin), and "
                                  "training reads its data more than once; save it to a file first "
                                  f"({cfg.origin})", f"{key}.{side}")


def from_dict(raw: dict[str, Any], origin: str = "<dict>", decode_flags: Mapping[str, Any] | None = None,
              decode_set: Collection[str] = ()) -> Config:
    """Validate a raw mapping into a Config (origin names the file in messages); typed
    `decode_flags` (field name -> value) win over the mapping's decode section, a beam size
    alone meaning one best unless `decode_set` (the decode fields `--set` named) has n_best."""
    raw = dict(raw)
    raw.pop("base", None)
    cfg = _build(Config, raw, "", origin)
    flags = _one_best_by_default(decode_flags or {}, decode_set)
    cfg = dataclasses.replace(cfg, origin=origin, decode_named=frozenset(decode_set) | frozenset(decode_flags or {}))
    names = flag_names(flags, origin)
    if flags:
        cfg = dataclasses.replace(cfg, decode=_typed_decode(cfg.decode, flags, names))
    _cross_check(cfg, names)
    return cfg


def typed_fields(cls: type, values: Mapping[str, Any], keys: Mapping[str, str]) -> Any:
    """Dataclass `cls` from `values` by field name (the rest at their defaults), each value
    checked by its field's rule; an error names `keys[name]` (the flag the user typed)."""
    hints = typing.get_type_hints(cls)
    meta = {f.name: dict(f.metadata) for f in dataclasses.fields(cls)}
    return cls(**{name: _convert(keys.get(name, name), value, hints[name], meta[name], "")
                  for name, value in values.items()})

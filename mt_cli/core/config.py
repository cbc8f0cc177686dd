"""Strict, typed configuration: YAML presets -> `--set` overrides -> typed decode flags ->
frozen dataclasses.

Every problem is reported as one line naming the dotted key (or the flag, or the request
field, that gave the value), the value, the rule and the file, because a config typo found
after an hour of training costs an hour.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mt_cli.core.errors import ConfigError, clip, show_value
from mt_cli.core.files import human_size
from mt_cli.core.model_size import available_memory, size_terms
from mt_cli.core.packaged import find_preset, preset_names
from mt_cli.core.textio import reads_once
from mt_cli.core.yaml_text import AliasBomb, load_yaml_text

CONFIG_FILE = "config.yaml"  # a resolved config, in run directories and model directories alike
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
SACREBLEU_TOKENIZERS = ("none", "13a", "intl", "zh", "ja-mecab", "ko-mecab", "char", "flores101", "flores200")


def _opt(default: Any, *, choices: tuple[Any, ...] | None = None, ge: float | None = None,
         gt: float | None = None, le: float | None = None, doc: str = "", **extra: Any) -> Any:
    """A dataclass field carrying its validation rule (and any extra metadata, such as `path=True`
    for a file path resolved against the config file naming it) next to its default."""
    meta = {"choices": choices, "ge": ge, "gt": gt, "le": le, "doc": doc, **extra}
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CorpusConfig:
    """One parallel corpus: two line-aligned files and a sampling weight."""

    source: str = _opt("", path=True, doc="source-side text file")
    target: str = _opt("", path=True, doc="target-side text file")
    weight: float = _opt(1.0, gt=0, doc="relative sampling weight among training corpora")


@dataclass(frozen=True)
class DataConfig:
    train: tuple[CorpusConfig, ...] = _opt((), doc="training corpora")
    dev: CorpusConfig | None = _opt(None, doc="development set for validation")
    test: CorpusConfig | None = _opt(None, doc="test set used by recipes")
    source_lang: str = _opt("src", doc="source language code, used in file names (test.hyp.<lang>) and reports")
    target_lang: str = _opt("tgt", doc="target language code, used in file names and reports")
    max_source_tokens: int = _opt(256, ge=1, doc="longer training pairs are skipped (counted)")
    max_target_tokens: int = _opt(256, ge=1, doc="longer training pairs are skipped (counted)")
    lenient_utf8: bool = _opt(False, doc="replace invalid UTF-8 instead of failing")


# Upper bounds of the model-size fields: far beyond any translation model (the largest
# Transformers have ~100 layers, hidden 12288, ffn 49152, vocabularies of 256k), low enough
# that a typo is refused in one line instead of allocating gigabytes (core/model_size.py
# checks their products against the machine's memory).
MAX_LAYERS = 1000
MAX_HIDDEN_DIM = 65536
MAX_HEADS = 1024
MAX_FFN_DIM = 262144
MAX_LENGTH = 65536
MAX_VOCAB = 1 << 20


@dataclass(frozen=True)
class TokenizerConfig:
    model: str | None = _opt(None, path=True, doc="existing SentencePiece model; trained into the run if null")
    target_model: str | None = _opt(None, path=True, doc="target-side model when joint is false")
    joint: bool = _opt(True, doc="one vocabulary for both sides")
    vocab_size: int = _opt(8000, ge=8, le=MAX_VOCAB,
        doc="pieces in a trained SentencePiece model (each, when not joint)")
    model_type: str = _opt("unigram", choices=("unigram", "bpe", "char", "word"), doc="SentencePiece algorithm")
    character_coverage: float = _opt(1.0, gt=0, le=1,
        doc="share of characters the vocabulary covers; the rest map to unk (0.9995 for scripts with many "
        "characters, such as Chinese or Japanese)")
    input_sentence_size: int = _opt(0, ge=0, doc="sample this many sentences (0 = all)")


@dataclass(frozen=True)
class ModelConfig:
    encoder_layers: int = _opt(6, ge=1, le=MAX_LAYERS, doc="encoder blocks")
    decoder_layers: int = _opt(6, ge=1, le=MAX_LAYERS, doc="decoder blocks")
    hidden_dim: int = _opt(512, ge=1, le=MAX_HIDDEN_DIM,
        doc="model width d (embeddings and every block); a multiple of num_heads")
    num_heads: int = _opt(8, ge=1, le=MAX_HEADS, doc="attention heads per attention layer")
    ffn_dim: int = _opt(2048, ge=1, le=MAX_FFN_DIM, doc="inner width of the feed-forward layers")
    dropout: float = _opt(0.1, ge=0, le=0.9, doc="dropout on embeddings and block outputs")
    attention_dropout: float = _opt(0.1, ge=0, le=0.9, doc="dropout on attention weights")
    ffn_dropout: float = _opt(0.1, ge=0, le=0.9, doc="dropout inside the feed-forward layers")
    norm: str = _opt("pre", choices=("pre", "post"),
        doc="layer norm before each sub-layer (pre, trains stably without long warmup) or after it (post, as in "
        "Vaswani et al. 2017)")
    share_embeddings: str = _opt("all", choices=("all", "target", "none"),
        doc="all: source, target and output embeddings tied (needs a joint vocabulary); target: target and output "
        "tied; none: untied")
    max_length: int = _opt(512, ge=8, le=MAX_LENGTH, doc="maximum positions per sequence")
    activation: str = _opt("relu", choices=("relu", "gelu"), doc="feed-forward activation")


@dataclass(frozen=True)
class TrainConfig:
    run_dir: str | None = _opt(None, path=True, doc="default: runs/<config name>")
    batch_tokens: int = _opt(4096, ge=16, doc="source+target tokens per batch (padded, max side)")
    effective_batch_tokens: int = _opt(0, ge=0, doc="accumulate gradients up to this (0 = off)")
    max_steps: int = _opt(100000, ge=1, doc="training stops at this step (a larger value continues a finished run)")
    max_minutes: float = _opt(0.0, ge=0, doc="stop after this wall time (0 = no limit)")
    schedule: str = _opt("noam", choices=("noam", "constant"),
        doc="noam: linear warmup, then inverse square root decay scaled by hidden_dim^-0.5 (Vaswani et al. 2017); "
        "constant: learning_rate throughout")
    learning_rate: float = _opt(2.0, gt=0, doc="Noam scale, or the constant rate")
    warmup_steps: int = _opt(4000, ge=0, doc="steps of linear warmup (noam)")
    adam_beta1: float = _opt(0.9, ge=0, le=1, doc="Adam first-moment decay")
    adam_beta2: float = _opt(0.998, ge=0, le=1, doc="Adam second-moment decay")
    adam_epsilon: float = _opt(1e-9, gt=0, doc="Adam epsilon")
    label_smoothing: float = _opt(0.1, ge=0, le=0.99, doc="probability mass spread over the vocabulary in the loss")
    clip_norm: float = _opt(0.0, ge=0, doc="global gradient norm clip (0 = off)")
    precision: str = _opt("auto", choices=("auto", "float32", "bfloat16", "float16"),
                          doc="auto: bfloat16 on bf16 hardware (AMX, AVX512-BF16, GPUs >= 8.0), float16 "
                          "on older tensor-core GPUs, else float32 (mt_cli/core/runtime.py)")
    jit_compile: bool = _opt(False, doc="XLA-compile the train step")
    strategy: str = _opt("default", choices=("default", "mirrored", "multi_worker"),
        doc="default: one device; mirrored: every visible GPU; multi_worker: several machines, through TF_CONFIG")
    seed: int = _opt(1234, doc="seeds weights, data order and dropout")
    deterministic: bool = _opt(False, doc="TF op determinism (exact resume on CPU)")
    shuffle_buffer: int = _opt(200000, ge=1, doc="examples held for shuffling")
    save_every: int = _opt(1000, ge=1, doc="steps between checkpoints")
    keep_last: int = _opt(5, ge=1, doc="step checkpoints kept (plus the best one)")
    eval_every: int = _opt(1000, ge=1, doc="steps between dev evaluations (with data.dev)")
    eval_max_sentences: int = _opt(0, ge=0, doc="translate only this many dev lines (0 = all)")
    eval_metric: str = _opt("bleu", choices=("bleu", "chrf", "loss"),
        doc="dev score that picks the best checkpoint and drives early stopping")
    early_stopping_patience: int = _opt(0, ge=0, doc="evaluations without improvement (0 = off)")
    average_last: int = _opt(0, ge=0, doc="average the last K checkpoints into the export")
    log_every: int = _opt(100, ge=1, doc="steps between training log lines and metrics.jsonl records")
    max_nonfinite_steps: int = _opt(10, ge=1, doc="stop after this many non-finite steps in a row")
    init_reset: bool = _opt(True, doc="with --init-from: restart the learning-rate schedule at step 0 "
                            "(warmup again); false continues it from the parent's step (its manifest's "
                            "`step`). The optimizer state (Adam moments) is fresh either way: a model "
                            "directory holds weights only")


INT32_MAX = 2**31 - 1  # integer decode options reach the search (and CTranslate2) as int32
MAX_BEAM = 1024  # a wider beam only costs memory (B x beam x length tensors); quality peaks far below


# How each decode option reaches the search (the `role` of a DecodeConfig field):
#   graph   its value shapes the compiled search graph (part of the graph key);
#   switch  a number passed as a tensor, whose being off (== default) or on changes the graph;
#   tensor  a number passed as a tensor (changing it never retraces);
#   host    used outside the graph (batching, seeding, loading).
DECODE_ROLES = ("graph", "switch", "tensor", "host")


def _decode_opt(default: Any, role: str, doc: str, flags: tuple[str, ...] = (), **rules: Any) -> Any:
    """A decode option: its rule, its role in the search and its CLI flags, in one place."""
    return _opt(default, doc=doc, role=role, flags=flags, **rules)


@dataclass(frozen=True)
class DecodeConfig:
    """Every decoding option, defined once: CLI flags, `--set`, the search's graph key and
    the model directory's decode section all derive from these fields."""

    beam_size: int = _decode_opt(4, "graph", "Beam width; 1 = greedy.", ("--beam-size", "-b"), ge=1,
                                 le=MAX_BEAM)
    n_best: int = _decode_opt(1, "tensor", "Hypotheses per line (text format: 'i ||| text ||| score').",
                              ge=1, le=MAX_BEAM)
    length_penalty: float = _decode_opt(
        0.6, "tensor", "GNMT length penalty alpha (CTranslate2's hypotheses are re-scored with it).", ge=0)
    coverage_penalty: float = _decode_opt(
        0.0, "switch", "GNMT coverage penalty beta, beam search (CTranslate2: its own).", ge=0)
    max_length_a: float = _decode_opt(
        1.5, "tensor", "Max output tokens = a * source length + b (CTranslate2: per batch).", ge=0)
    max_length_b: int = _decode_opt(10, "tensor", "See --max-length-a.", ge=0, le=INT32_MAX)
    batch_size: int = _decode_opt(32, "host", "Sentences per batch.", ge=1, le=INT32_MAX)
    batch_tokens: int = _decode_opt(0, "host", "Source tokens per batch (0 = use --batch-size).", ge=0,
                                    le=INT32_MAX)
    sampling_topk: int = _decode_opt(0, "graph", "Sample from the k best tokens (0 = search).", ge=0,
                                     le=INT32_MAX)
    sampling_topp: float = _decode_opt(1.0, "switch", "Nucleus sampling mass (1 = off).", gt=0, le=1)
    sampling_temperature: float = _decode_opt(1.0, "tensor", "Sampling temperature.",
                                              ("--temperature",), gt=0)
    seed: int | None = _decode_opt(None, "host", "Seed for sampling (default: random).", ge=0, le=INT32_MAX)
    shortlist: int = _decode_opt(
        0, "switch", "Output vocabulary shortlist (native engine): score only the N most frequent "
        "target pieces plus each batch's source pieces (joint vocabulary) and prefixes; 0 = all.", ge=0,
        le=INT32_MAX)
    dtype: str = _decode_opt("auto", "host", "Compute dtype of the native engine: auto (float32 on every machine: "
                             "a line's translation then never depends on its batch), float32, or bfloat16 "
                             "(faster on some bf16 CPUs; output may depend on the batching).",
                             choices=("auto", "float32", "bfloat16"))
    alignments: bool = _decode_opt(
        False, "host", "Append word alignments from cross-attention: text ' ||| 0-0 1-2', "
        "jsonl 'alignment' (native engine).")
    alignment_layer: int = _decode_opt(
        -2, "host", "Decoder layer whose head-averaged cross-attention gives alignments "
        "(0 = first, -1 = last; default -2, the one before last (a one-layer decoder: its layer), "
        "aligned best on Multi30k); out of range is an error.", ge=-INT32_MAX, le=INT32_MAX)

    @property
    def sampling(self) -> bool:
        """Sampling replaces search when top-k or top-p truncation is asked for."""
        return self.sampling_topk != 0 or self.sampling_topp < 1.0

    def ignored_options(self) -> list[str]:
        """Options set to a non-default value that the chosen search does not use: each a
        sentence naming the flag and key, so nothing is ignored silently."""
        notes = []
        if self.sampling_temperature != 1.0 and not self.sampling:
            notes.append(f"--temperature (decode.sampling_temperature={self.sampling_temperature}) only "
                         "applies to sampling (--sampling-topk or --sampling-topp < 1); ignored")
        if self.coverage_penalty and (self.beam_size == 1 or self.sampling):
            notes.append(f"--coverage-penalty (decode.coverage_penalty={self.coverage_penalty}) only "
                         "applies to beam search (--beam-size > 1, no sampling); ignored")
        return notes


def decode_fields(*roles: str) -> tuple[dataclasses.Field, ...]:
    """DecodeConfig's fields in definition order, optionally only those of some roles."""
    return tuple(f for f in dataclasses.fields(DecodeConfig) if not roles or f.metadata["role"] in roles)


def decode_flag(name: str) -> str:
    """The CLI flag of DecodeConfig field `name`: its first `flags` entry, else --name-with-dashes;
    the flags and the errors about their values share it."""
    field_ = next(f for f in dataclasses.fields(DecodeConfig) if f.name == name)
    return (field_.metadata["flags"] or ("--" + name.replace("_", "-"),))[0]


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[str, ...] = _opt(("bleu", "chrf", "ter"), choices=("bleu", "chrf", "ter"),
        doc="sacreBLEU metrics reported")
    tokenize: str = _opt("13a", choices=SACREBLEU_TOKENIZERS,
        doc="sacreBLEU tokenizer of BLEU (13a: WMT's; zh, ja-mecab, ko-mecab for those languages)")
    lowercase: bool = _opt(False, doc="case-insensitive BLEU and chrF")
    chrf_word_order: int = _opt(0, ge=0, le=2, doc="2 = chrF++")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    origin: str = field(default="<defaults>", compare=False, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready dict (tuples as lists), without internal fields."""
        raw = dataclasses.asdict(self)
        raw.pop("origin", None)
        return _plain(raw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------- building and checking

def _describe(value: Any) -> str:
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
    if tp is float and isinstance(value, str) and _SCIENTIFIC.match(value):
        value = float(value)  # YAML 1.1 reads 1e-9 (no dot) as a string
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_describe(value)}{_where(origin)}", key)
    if tp is float:
        value = float(value)
        if not math.isfinite(value):  # no option has a meaning at inf or nan (YAML .inf, a flag's 'inf')
            raise ConfigError(f"{key}: must be a finite number, got {show_value(value)}{_where(origin)}", key)
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
            raise ConfigError(f"{key}: must be {words} {bound}, got {show_value(value)}{_where(origin)}", key)
    return value


def _build(cls: type, raw: Any, prefix: str, origin: str) -> Any:
    """Build dataclass `cls` from a dict, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {_describe(raw)} ({origin})")
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


def decode_with(base: DecodeConfig, values: Mapping[str, Any], names: DecodeNames) -> DecodeConfig:
    """`base` with typed `values` applied under DecodeConfig's rules (each field's, then those
    across fields): per-call options get the checks a config file gets, from this one place."""
    decode = _typed_decode(base, values, names)
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


# ---------------------------------------------------------------- YAML loading

def _load_yaml(path: Path, shown: Path) -> dict[str, Any]:
    """The YAML mapping in `path`, every problem one error naming `shown` (the path as given:
    a symlink's target is not what the user named)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read config ({exc})") from None
    try:
        raw = load_yaml_text(text)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"{shown}:{mark.line + 1}" if mark else str(shown)
        raise ConfigError(
            f"{where}: {exc.problem}; only plain YAML values are accepted (no !!python tags)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark else str(shown)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    except AliasBomb as exc:
        raise ConfigError(f"{shown}: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"{shown}: nested too deeply to read (thousands of levels of brackets or "
                          "indentation); a config is a few levels of sections") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: expected a mapping of sections at the top, got {type(raw).__name__}")
    return raw


def _absolute(base_dir: Path, value: str, where: str) -> str:
    """`value` resolved against `base_dir`; a NUL byte (no file system allows one) is a
    config error naming `where`, not a ValueError from the OS layer."""
    if "\x00" in value:
        raise ConfigError(f"{where}: {show_value(value)} is not a usable path (it contains a NUL byte)")
    return str((base_dir / value).resolve())


def _section_type(cls: type, name: str) -> type | None:
    """The dataclass a field of `cls` holds (directly, optionally, or as a tuple of them)."""
    hint = typing.get_type_hints(cls).get(name)
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate  # type: ignore[return-value]
    return None


def _path_fields(cls: type, raw: Any, fix: Callable[[str], str]) -> Any:
    """`raw` (a section, or a list of them) with every `path=True` field's value passed to `fix`."""
    if isinstance(raw, list):
        return [_path_fields(cls, item, fix) for item in raw]
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for fld in dataclasses.fields(cls):
        if fld.name not in out:
            continue
        section = _section_type(cls, fld.name)
        if section is not None:
            out[fld.name] = _path_fields(section, out[fld.name], fix)
        elif fld.metadata.get("path") and isinstance(out[fld.name], str):
            out[fld.name] = fix(out[fld.name])
    return out


def _relative_path(value: str) -> bool:
    return bool(value) and value != "-" and not Path(value).is_absolute()


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make file paths absolute against the directory of the YAML file naming them."""

    def fix(value: str) -> str:
        return _absolute(base_dir, value, f"a path in {base_dir}") if _relative_path(value) else value

    return _path_fields(Config, raw, fix)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def find_config(given: str, relative_to: Path, where: str) -> Path:
    """The file a config name stands for: a path (relative to `relative_to`) where one exists,
    else the preset of that name shipped in the package; a missing preset-like name (no
    directory, no suffix) is one line listing the presets."""
    candidate = Path(_absolute(relative_to, given, where))
    if candidate.exists():
        return candidate
    preset = find_preset(given)
    if preset is not None:
        return preset
    if len(Path(given).parts) == 1 and not Path(given).suffix:
        raise ConfigError(f"{candidate}: config file not found, and {given!r} is not a preset "
                          f"({', '.join(preset_names())})")
    return candidate


def _load_tree(shown: Path, seen: tuple[Path, ...] = (), bases: bool = True) -> dict[str, Any]:
    """The config at `shown` merged over its `base` chain (`bases=False`: a complete config,
    such as a model directory's, whose `base` would read a file outside it)."""
    path = shown.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{shown}: 'base' inheritance loops ({chain})")
    raw = _resolve_paths(_load_yaml(path, shown), path.parent)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not bases:
        raise ConfigError(f"{shown}: base: a model directory's config is complete and names no base, "
                          f"got {show_value(base)}; re-export the model")
    if not isinstance(base, str):
        raise ConfigError(f"base: expected a file name, got {_describe(base)} ({shown})")
    return _merge(_load_tree(find_config(base, path.parent, "base"), (*seen, path)), raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `key.path=value`; the value is parsed as YAML (so 100 is an int)."""
    if "=" not in text:
        raise ConfigError(f"--set {show_value(text)}: expected key.path=value, e.g. train.max_steps=1000")
    key, _, value = text.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {show_value(text)}: missing key before '='")
    if value.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        return parts, value.strip()  # YAML 1.1 would turn these into booleans (no = Norwegian)
    try:
        parsed = load_yaml_text(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    except AliasBomb as exc:
        raise ConfigError(f"--set {clip(key.strip())}: the value cannot be used: {exc}") from None
    except RecursionError:
        raise ConfigError(f"--set {clip(key.strip())}: the value is nested too deeply to read") from None
    return parts, parsed


def _is_path_key(parts: list[str]) -> bool:
    """Whether dotted key `parts` (list indices included) names a `path=True` field."""
    cls: type | None = Config
    for part in parts:
        if cls is None:
            return False
        if part.isdigit():
            continue
        fld = next((f for f in dataclasses.fields(cls) if f.name == part), None)
        if fld is None:
            return False
        if fld.metadata.get("path"):
            return part == parts[-1]
        cls = _section_type(cls, part)
    return False


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted overrides (`data.train.0.source=x` indexes lists); paths resolve against cwd."""
    import copy

    raw = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        if _is_path_key(parts) and isinstance(value, str) and _relative_path(value):
            value = _absolute(Path.cwd(), value, f"--set {show_value(text)}")
        node: Any = raw
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) > len(node):
                    raise ConfigError(f"--set {show_value(text)}: {clip('.'.join(parts[:depth]))} is a list of "
                                      f"{len(node)}; use an index 0..{len(node)}")
                index = int(part)
                if index == len(node):
                    node.append({})
                if last:
                    node[index] = value
                else:
                    if not isinstance(node[index], (dict, list)):
                        node[index] = [] if parts[depth + 1].isdigit() else {}
                    node = node[index]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {show_value(text)}: {clip('.'.join(parts[:depth]))} is not a section")
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = [] if parts[depth + 1].isdigit() else {}
                    node = node[part]
    return raw


def from_dict(raw: dict[str, Any], origin: str = "<dict>",
              decode_flags: Mapping[str, Any] | None = None) -> Config:
    """Validate a raw mapping into a Config (origin names the file in messages); typed
    `decode_flags` (field name -> value) win over the mapping's decode section."""
    raw = dict(raw)
    raw.pop("base", None)
    cfg = _build(Config, raw, "", origin)
    cfg = dataclasses.replace(cfg, origin=origin)
    names = flag_names(decode_flags or {}, origin)
    if decode_flags:
        cfg = dataclasses.replace(cfg, decode=_typed_decode(cfg.decode, decode_flags, names))
    _cross_check(cfg, names)
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                decode_flags: Mapping[str, Any] | None = None, bases: bool = True) -> Config:
    """Load a YAML config (with its bases), apply `--set` overrides, then the decode flags.

    `decode_flags` are the values Typer parsed (field name -> value), kept typed: no YAML
    round trip, and a bad one is reported under the flag the user typed (`--beam-size: ...`).
    """
    raw: dict[str, Any] = {}
    origin = "<defaults>"
    if path is not None:
        found = find_config(str(path), Path.cwd(), "config")  # a file, or a preset's name
        raw, origin = _load_tree(found, bases=bases), str(path) if Path(path).exists() else str(found)
    raw = apply_overrides(raw, list(overrides or []))
    if overrides:
        origin += " + --set"
    return from_dict(raw, origin, decode_flags)

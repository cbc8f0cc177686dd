"""The configuration schema: every section and key of a config, its default, its rule and its
doc, as frozen dataclasses. This is the page a reader opens to learn what a config can say
(docs/configuration.md is generated from it); config_loading.py reads YAML, bases, presets and
`--set` into it, and config_checks.py builds the typed sections and checks the rules that span
keys.

Every problem is reported as one line naming the dotted key (or the flag, or the request
field, that gave the value), the value, the rule and the file, because a config typo found
after an hour of training costs an hour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from mt_cli.core.clean_settings import CleanConfig
from mt_cli.core.fields import rule_field

CONFIG_FILE = "config.yaml"  # a resolved config, in run directories and model directories alike
SACREBLEU_TOKENIZERS = ("none", "13a", "intl", "zh", "ja-mecab", "ko-mecab", "char", "flores101", "flores200")


_opt = rule_field  # the schema's own short name for it


@dataclass(frozen=True)
class CorpusConfig:
    """One parallel corpus: two line-aligned files and a sampling weight."""

    source: str = _opt("", path=True, doc="source-side text file")
    target: str = _opt("", path=True, doc="target-side text file")
    weight: float = _opt(1.0, gt=0, doc="relative sampling weight among training corpora")
    source_lang: str = _opt("", doc="language of the source file (empty: data.source_lang)")
    target_lang: str = _opt("", doc="language of the target file (empty: data.target_lang); with several target "
                            "languages in data.train, a <2xx> tag naming it is put before each source")
    tag: str = _opt("", choices=("", "bt"),
                    doc="bt: back-translated (synthetic) sources, marked with a <bt> tag at training time only "
                    "(tagged back-translation, Caswell et al. 2019)")


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
    clean: CleanConfig | None = _opt(None, doc="`mt-cli data clean`'s rules (docs/data.md), applied to the training "
                                     "corpora while their cache is encoded (`clean: {}` for the defaults), data.dev "
                                     "and data.test serving as its --against files; each dropped pair counted")


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
    user_defined_symbols: tuple[str, ...] = _opt((), doc="pieces SentencePiece never splits (tags of your own); "
                                                 "the <2xx> target tags and <bt> are added when the data needs them")


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


# How the CTranslate2 engine serves each decode option (the `ctranslate2` of a DecodeConfig
# field); the engine choice, the CTranslate2 engine's checks, translate's warnings and the
# `--engine` help are all read from it:
#   same          as the native engine does (or the option is one engine's alone and changes
#                 nothing the other computes: the native dtype, the alignment layer,
#                 CTranslate2's vocabulary map);
#   own           its own way, close to the native one: given, it earns a warning (`ct2_note`);
#   native_first  CTranslate2 has its own kind, unlike the native one: `auto` takes the native
#                 engine for it and `--engine ctranslate2` refuses it, as for `native`; a
#                 CTranslate2 export (no native weights) applies its own, with the warning;
#   native        only the native engine has it: `auto` takes the native engine, CTranslate2
#                 refuses it.
# `feature` names what a non-`same` option is, in the sentences that say why (the choice, errors).
CTRANSLATE2_SUPPORT = ("same", "own", "native_first", "native")


def _decode_opt(default: Any, role: str, doc: str, flags: tuple[str, ...] = (), *, ctranslate2: str = "same",
                feature: str = "", ct2_note: str = "", **rules: Any) -> Any:
    """A decode option: its rule, its role in the search, its CLI flags and how CTranslate2
    serves it, in one place."""
    return _opt(default, doc=doc, role=role, flags=flags, ctranslate2=ctranslate2, feature=feature,
                ct2_note=ct2_note, **rules)


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
        0.0, "switch", "GNMT coverage penalty beta, beam search (CTranslate2: its own).", ge=0,
        ctranslate2="native_first", feature="GNMT's coverage penalty",
        ct2_note="--coverage-penalty uses CTranslate2's own coverage penalty")
    max_length_a: float = _decode_opt(
        1.5, "tensor", "Max output tokens = a * source length + b.", ge=0)
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
        le=INT32_MAX, ctranslate2="native", feature="vocabulary shortlist")
    vocabulary_map: bool = _decode_opt(
        False, "host", "CTranslate2 engine: limit each batch's output vocabulary by the model's vocabulary map "
        "(vmap.txt, built from the training corpus at export) to its source pieces' candidates, the most frequent "
        "pieces and any prefix. Faster, but a line's translation then depends on the lines batched with it "
        "(shards, servers), so off by default. The native engine ignores it (see --shortlist).")
    dtype: str = _decode_opt("auto", "host", "Compute dtype of the native engine: auto (float32 on every machine: "
                             "a line's translation then never depends on its batch), float32, or bfloat16 "
                             "(faster on some bf16 CPUs; output may depend on the batching).",
                             choices=("auto", "float32", "bfloat16"))
    compute_type: str = _decode_opt("auto", "host", "Compute type of the CTranslate2 engine: auto (int8 where the CPU "
                                    "has int8 units (VNNI, AMX) and the model's dev check kept BLEU within 0.3, "
                                    "else float32; a quantized export keeps its own), float32, or int8.",
                                    choices=("auto", "float32", "int8"))
    alignments: bool = _decode_opt(
        False, "host", "Append word alignments from cross-attention: text ' ||| 0-0 1-2', "
        "jsonl 'alignment' (native engine).", ctranslate2="native", feature="attention alignments")
    target_lang: str | None = _decode_opt(
        None, "host", "Target language, for a model with several (its <2xx> tag goes before each source; "
        "required there); else optional and checked against the model's.")
    alignment_layer: int = _decode_opt(
        -2, "host", "Decoder layer whose head-averaged cross-attention gives alignments "
        "(0 = first, -1 = last; default -2, the one before last (a one-layer decoder: its layer), "
        "aligned best on Multi30k); out of range is an error.", ge=-INT32_MAX, le=INT32_MAX)

    @property
    def sampling(self) -> bool:
        """Sampling replaces search when top-k or top-p truncation is asked for."""
        return self.sampling_topk != 0 or self.sampling_topp < 1.0

    def _unused(self, name: str) -> bool:
        """Whether the chosen search leaves option `name` unused, whatever its value."""
        if name == "sampling_temperature":
            return not self.sampling
        if name == "coverage_penalty":
            return self.beam_size == 1 or self.sampling
        return False

    def in_effect(self, name: str) -> bool:
        """Option `name` is set to a non-default value that the chosen search uses."""
        return getattr(self, name) != _FIELDS[name].default and not self._unused(name)

    def ignored_options(self) -> list[str]:
        """Options set to a non-default value that the chosen search does not use: each a
        sentence naming the flag and key, so nothing is ignored silently."""
        notes = []
        if self.sampling_temperature != 1.0 and self._unused("sampling_temperature"):
            notes.append(f"--temperature (decode.sampling_temperature={self.sampling_temperature}) only "
                         "applies to sampling (--sampling-topk or --sampling-topp < 1); ignored")
        if self.coverage_penalty and self._unused("coverage_penalty"):
            notes.append(f"--coverage-penalty (decode.coverage_penalty={self.coverage_penalty}) only "
                         "applies to beam search (--beam-size > 1, no sampling); ignored")
        return notes


def decode_fields(*roles: str) -> tuple[dataclasses.Field, ...]:
    """DecodeConfig's fields in definition order, optionally only those of some roles."""
    return tuple(f for f in dataclasses.fields(DecodeConfig) if not roles or f.metadata["role"] in roles)


_FIELDS = {f.name: f for f in dataclasses.fields(DecodeConfig)}


def decode_flag(name: str) -> str:
    """The CLI flag of DecodeConfig field `name`: its first `flags` entry, else --name-with-dashes;
    the flags and the errors about their values share it."""
    return (_FIELDS[name].metadata["flags"] or ("--" + name.replace("_", "-"),))[0]


def decode_flags(name: str) -> tuple[str, ...]:
    """Every CLI flag of DecodeConfig field `name`, as declared to Typer: `decode_flag` and the
    field's other flags; a boolean on by default as `--x/--no-x` (else it could only be turned
    off by `--set`)."""
    flags = (decode_flag(name), *_FIELDS[name].metadata["flags"][1:])
    if _FIELDS[name].default is True:
        return (f"{flags[0]}/--no-{flags[0].removeprefix('--')}", *flags[1:])
    return flags


def ctranslate2_fields(*support: str) -> tuple[dataclasses.Field, ...]:
    """DecodeConfig's fields whose `ctranslate2` declaration is one of `support`."""
    unknown = set(support) - set(CTRANSLATE2_SUPPORT)
    if unknown:
        raise ValueError(f"not a CTranslate2 support kind: {', '.join(sorted(unknown))}")
    return tuple(f for f in _FIELDS.values() if f.metadata["ctranslate2"] in support)


def ctranslate2_notes(given: Iterable[str]) -> list[str]:
    """What CTranslate2 does its own way among the decode options `given` (field names): one
    warning each, said once however many of the options share it."""
    named = set(given)
    notes = [f.metadata["ct2_note"] for f in ctranslate2_fields("own", "native_first") if f.name in named]
    return list(dict.fromkeys(notes))


def native_features() -> list[str]:
    """What only the native engine has, as the `--engine` help lists it."""
    return [f.metadata["feature"] for kind in ("native", "native_first") for f in ctranslate2_fields(kind)]


def native_feature(name: str) -> str:
    """A decode option the native engine alone serves, as the sentences about it name it:
    `--alignments (attention alignments)`."""
    return f"{decode_flag(name)} ({_FIELDS[name].metadata['feature']})"


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
    # the decode fields given for this run, by typed flags or `--set` (not by a file): what
    # translate warns about where CTranslate2 serves them its own way
    decode_named: frozenset[str] = field(default=frozenset(), compare=False, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready dict (tuples as lists), without internal fields."""
        raw = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.metadata.get("internal"):
                raw.pop(f.name, None)
        return _plain(raw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

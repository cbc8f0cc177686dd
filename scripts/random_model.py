#!/usr/bin/env python3
"""A model directory with seeded random weights for a preset, for decoding benchmarks.

Why: speed on bigger models (transformer-base, -big) is what matters for AMX, and
training one on this machine takes days. Random weights decode at full cost; the output
length is fixed by the decode section written into the directory (max_length_a=0,
max_length_b=N), so both engines decode about N tokens per sentence.

  python scripts/random_model.py --config transformer-base --spm runs/x/spm.model \\
      --out bench/base-random --length 32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from json_report import emit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="a preset (model section used)")
    parser.add_argument("--spm", type=Path, required=True, help="a joint SentencePiece model")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--length", type=int, default=32, help="output tokens per sentence")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from mt_cli.cli.common import start_tensorflow

    start_tensorflow()
    import keras

    from mt_cli.core.config_loading import load_config
    from mt_cli.core.tokenizer import Tokenizers
    from mt_cli.engines.model_dir import write_model_dir
    from mt_cli.model import build_model

    tokenizers = Tokenizers.load(args.spm)
    cfg = load_config(args.config, ["decode.max_length_a=0", f"decode.max_length_b={args.length}",
                                    "tokenizer.joint=true"])
    keras.utils.set_random_seed(args.seed)
    model = build_model(cfg.model, tokenizers.source.vocab_size, tokenizers.target.vocab_size)
    write_model_dir(args.out, model, cfg, tokenizers, {"step": 0, "weights_from": {"random_seed": args.seed}})
    emit({"out": str(args.out), "parameters": int(model.count_params()), "output_tokens": args.length}, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

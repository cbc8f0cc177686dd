"""Transformer model for translation."""

from mt_cli.model.transformer import Transformer, build_model

__all__ = ["Transformer", "build_model"]

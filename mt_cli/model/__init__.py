"""The model layer: Transformer layers, the model, ensembles and the search over them.

TensorFlow is imported here, at the package boundary; nothing in this package touches
files (the model directory is mt_cli.engines.model_dir's job).
"""

from mt_cli.model.transformer import Transformer, build_model, dtype_policy

__all__ = ["Transformer", "build_model", "dtype_policy"]

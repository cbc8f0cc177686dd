"""mt-cli: train, translate and evaluate Transformer NMT models from one YAML config.

Kept import-free on purpose: `mt-cli --help` must never pay for TensorFlow.
"""

__version__ = "0.1.0"

"""Search over ``Transformer.encode``/``decode_step`` (moved here whole; split in the next commit)."""

from mt_cli.model.search.beam import (
    TENSOR_OPTIONS,
    SearchModel,
    SearchResult,
    ban_bias,
    bound_search,
    graph_key,
    search,
    search_mode,
    top_k_wide,
)
from mt_cli.model.search.constrained import ConstraintState, constrained_search

__all__ = [
    "TENSOR_OPTIONS", "ConstraintState", "SearchModel", "SearchResult", "ban_bias", "bound_search",
    "constrained_search", "graph_key", "search", "search_mode", "top_k_wide",
]

"""Search over ``Transformer.encode``/``decode_step``: greedy, sampling, beam and constrained beam.

options          how decode options reach the graph (roles, graph key, ``SearchParams``)
shared           graph steps every strategy shares (setup, forced tokens, penalties, fast top-k)
greedy_sampling  left-to-right decoding: greedy, or sampling (top-k, top-p)
beam             beam search
compiled         the compiled searches and their cache (``search``, ``bound_search``)
constrained      the host-side beam for lexically constrained decoding
"""

from mt_cli.model.search.compiled import SearchResult, bound_search, compile_search, search
from mt_cli.model.search.constrained import ConstraintState, constrained_search
from mt_cli.model.search.options import TENSOR_OPTIONS, SearchParams, graph_key, search_mode
from mt_cli.model.search.shared import SearchModel, ban_bias, top_k_wide

__all__ = [
    "TENSOR_OPTIONS", "ConstraintState", "SearchModel", "SearchParams", "SearchResult", "ban_bias",
    "bound_search", "compile_search", "constrained_search", "graph_key", "search", "search_mode",
    "top_k_wide",
]

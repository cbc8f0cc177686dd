"""Search over ``Transformer.encode``/``decode_step``: greedy, sampling, beam and constrained beam.

options   how decode options reach the graph (roles, graph key, ``SearchParams``, compile cache)
graph     helpers every strategy shares (setup, forced tokens, penalties, fast top-k)
sampling  greedy decoding and sampling
beam      beam search
entry     the compiled entry points (``search``, ``bound_search``)
constrained  the host-side beam for lexically constrained decoding
"""

from mt_cli.model.search.constrained import ConstraintState, constrained_search
from mt_cli.model.search.entry import SearchResult, bound_search, compile_search, search
from mt_cli.model.search.graph import SearchModel, ban_bias, top_k_wide
from mt_cli.model.search.options import TENSOR_OPTIONS, SearchParams, graph_key, search_mode

__all__ = [
    "TENSOR_OPTIONS", "ConstraintState", "SearchModel", "SearchParams", "SearchResult", "ban_bias",
    "bound_search", "compile_search", "constrained_search", "graph_key", "search", "search_mode",
    "top_k_wide",
]

"""Every decode option is used the way its `role` says (a `tensor` option baked into a graph
leaves a stale compiled search: a changed value would be ignored without an error).

Statically, on the source of mt_cli/model/search/: the graph code reads option values only as
``SearchParams`` fields and never branches on them in Python; the functions that build a
tf.function read only `graph` options and whether `switch` options are on.  Dynamically: a
changed `tensor`/`switch` value reuses the one trace and changes the output; a changed `graph`
value (or a switch turned on) compiles a new search.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO, random_source_batch, tiny_model_config

from mt_cli.core.config import DecodeConfig, decode_fields
from mt_cli.core.tokenizer import EOS_ID
from mt_cli.model import build_model
from mt_cli.model.search import TENSOR_OPTIONS, SearchParams, compile_search, graph_key
from mt_cli.model.search.compiled import compiled, tracing_counts

SEARCH = REPO / "mt_cli" / "model" / "search"
GRAPH_MODULES = ("shared.py", "greedy_sampling.py", "beam.py")  # code that runs inside the compiled search
ROLES = {f.name: f.metadata["role"] for f in decode_fields()}
DEFAULTS = {f.name: f.default for f in decode_fields()}
RECORD_ONLY = {"seed"}  # a host option whose drawn value the record carries
TENSOR_ATTRIBUTES = {"dtype"}  # option names that are also attributes of every tensor
VOCAB = 24


# -- static: the source ---------------------------------------------------------------
def parsed(path: Path) -> ast.Module:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node  # type: ignore[attr-defined]
    return tree


def is_record(node: ast.AST) -> bool:
    """`params` or `self.params`: the SearchParams record."""
    return (isinstance(node, ast.Name) and node.id == "params") or (
        isinstance(node, ast.Attribute) and node.attr == "params")


def reads_params(node: ast.AST) -> bool:
    """`params.x` or `self.params.x`: a read of a field of the record."""
    return isinstance(node, ast.Attribute) and is_record(node.value)


def assigned(target: ast.AST) -> Iterator[ast.Name | ast.Attribute]:
    """The names and attributes an assignment target binds (`x`, `self.x`, `a, (b, c)`)."""
    if isinstance(target, (ast.Name, ast.Attribute)):
        yield target
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from assigned(element)
    elif isinstance(target, ast.Starred):
        yield from assigned(target.value)


def scopes(tree: ast.Module) -> list[ast.FunctionDef]:
    """Top-level functions and methods (a nested function shares its parent's names)."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
            and isinstance(n.parent, (ast.Module, ast.ClassDef))]  # type: ignore[attr-defined]


def assignments(node: ast.AST) -> Iterator[tuple[ast.AST, ast.AST]]:
    """(target, value) pairs of the assignments under `node`; `a, b = x, y` pairs element-wise."""
    for assign in ast.walk(node):
        if not isinstance(assign, (ast.Assign, ast.AugAssign)):
            continue
        for target in assign.targets if isinstance(assign, ast.Assign) else [assign.target]:
            value = assign.value
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
                yield from zip(target.elts, value.elts)
            else:
                yield target, value


def tainted_names(tree: ast.Module) -> tuple[set[str], dict[ast.FunctionDef, set[str]]]:
    """(self attributes, each scope's local names) whose value derives from the record (a
    fixpoint over plain assignments), so `self.alpha = params.length_penalty` counts as it."""
    attrs: set[str] = set()
    names: dict[ast.FunctionDef, set[str]] = {scope: {"params"} for scope in scopes(tree)}

    def derived(expr: ast.AST, local: set[str]) -> bool:
        return any((isinstance(n, ast.Name) and n.id in local) or reads_params(n)
                   or (isinstance(n, ast.Attribute) and n.attr in attrs) for n in ast.walk(expr))

    while True:
        before = len(attrs) + sum(map(len, names.values()))
        for scope, local in names.items():
            for target, value in assignments(scope):
                if derived(value, local):
                    for bound in assigned(target):
                        local.add(bound.id) if isinstance(bound, ast.Name) else attrs.add(bound.attr)
        if len(attrs) + sum(map(len, names.values())) == before:
            return attrs, names


def python_decisions(scope: ast.AST) -> Iterator[ast.AST]:
    """Expressions Python itself evaluates to decide or size something at trace time."""
    for node in ast.walk(scope):
        if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            yield node.test
        elif isinstance(node, (ast.For, ast.comprehension)):
            yield node.iter
        elif isinstance(node, ast.BoolOp):
            yield from node.values
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "range", "int", "float", "bool", "len", "max", "min", "round"):
            yield from node.args


def test_graph_code_reads_option_values_only_through_the_record() -> None:
    problems = []
    for name in GRAPH_MODULES:
        for node in ast.walk(parsed(SEARCH / name)):
            where = f"{name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Name) and node.id in ("DecodeConfig", "options"):
                problems.append(f"{where}: {node.id} in graph code (pass SearchParams or graph values)")
            elif isinstance(node, ast.Subscript) and is_record(node.value):
                problems.append(f"{where}: the record indexed (read its fields by name)")
            elif isinstance(node, ast.Constant) and node.value in ROLES:
                problems.append(f"{where}: option name {node.value!r} as a string (read the record's field)")
            elif isinstance(node, ast.Attribute) and node.attr in ROLES and not (
                    node.attr in TENSOR_ATTRIBUTES and not reads_params(node)):
                role = ROLES[node.attr]
                on_record = reads_params(node) and (role in ("tensor", "switch") or node.attr in RECORD_ONLY)
                if not on_record:
                    problems.append(f"{where}: .{node.attr} ({role} option) read outside the SearchParams record")
    assert not problems, "\n".join(problems)


def test_graph_code_never_branches_on_option_values() -> None:
    """Python control flow on a record value would bake one value into the trace (or fail)."""
    problems = []
    for name in GRAPH_MODULES:
        attrs, names = tainted_names(parsed(SEARCH / name))
        for scope, local in names.items():
            for node in (n for expr in python_decisions(scope) for n in ast.walk(expr)):
                if (reads_params(node) or (isinstance(node, ast.Name) and node.id in local)
                        or (isinstance(node, ast.Attribute) and node.attr in attrs)):
                    problems.append(f"{name}:{node.lineno}: Python decides on {ast.unparse(node)}, an option value")
    assert not problems, "\n".join(problems)


def option_reads(function: ast.AST, var: str) -> Iterator[ast.Attribute]:
    """`var.<field>` reads inside `function` (nested functions included)."""
    for node in ast.walk(function):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == var:
            yield node


def compared_with_default(read: ast.Attribute, name: str) -> bool:
    """`options.<switch> != default` (or < / >): the read asks only whether the switch is on."""
    parent = read.parent  # type: ignore[attr-defined]
    return (isinstance(parent, ast.Compare) and parent.left is read and len(parent.comparators) == 1
            and isinstance(parent.comparators[0], ast.Constant) and parent.comparators[0].value == DEFAULTS[name])


def graph_shaping_problems(function: ast.AST, var: str, where: str) -> list[str]:
    """A graph builder may read `graph` options, and `switch` options only as on/off."""
    problems = []
    for read in option_reads(function, var):
        if read.attr in ROLES and ROLES[read.attr] == "switch" and not compared_with_default(read, read.attr):
            problems.append(f"{where}:{read.lineno}: switch {read.attr} used for more than on/off")
        elif read.attr in ROLES and ROLES[read.attr] != "graph" and ROLES[read.attr] != "switch":
            problems.append(f"{where}:{read.lineno}: {read.attr} ({ROLES[read.attr]} option) shapes the graph")
    return problems


def properties_read() -> dict[str, ast.FunctionDef]:
    """DecodeConfig's properties (e.g. `sampling`), which graph builders may read like fields."""
    tree = parsed(REPO / "mt_cli" / "core" / "config.py")
    config = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DecodeConfig")
    return {n.name: n for n in config.body if isinstance(n, ast.FunctionDef)
            and any(isinstance(d, ast.Name) and d.id == "property" for d in n.decorator_list)}


def graph_builders() -> Iterator[tuple[str, ast.FunctionDef]]:
    """(module, function) for each search function that makes a tf.function, and the helpers
    it hands the whole options to (search_mode)."""
    functions = [(path.name, node) for path in sorted(SEARCH.glob("*.py"))
                 for node in ast.walk(parsed(path)) if isinstance(node, ast.FunctionDef)]
    helpers = {node.name: (name, node) for name, node in functions if isinstance(node.parent, ast.Module)}
    for name, node in functions:
        calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
        if any(isinstance(c.func, ast.Attribute) and c.func.attr == "function" for c in calls):
            yield name, node
            for call in calls:
                passes_options = any(isinstance(a, ast.Name) and a.id == "options" for a in call.args)
                if passes_options and isinstance(call.func, ast.Name) and call.func.id in helpers:
                    yield helpers[call.func.id]


def test_graph_builders_read_only_graph_shaping_options() -> None:
    builders = list(graph_builders())
    assert {node.name for _, node in builders} >= {"compile_search", "search_mode", "_compiled_step"}
    problems = []
    for module, node in builders:
        for read in option_reads(node, "options"):
            assert read.attr in ROLES or read.attr in properties_read(), f"{module}:{read.lineno}: {read.attr}"
        problems += graph_shaping_problems(node, "options", module)
    for name, prop in properties_read().items():
        problems += graph_shaping_problems(prop, "self", f"config.py DecodeConfig.{name}")
    assert not problems, "\n".join(problems)


def test_the_record_holds_exactly_the_value_options() -> None:
    assert SearchParams._fields == (*TENSOR_OPTIONS, "seed")
    assert set(TENSOR_OPTIONS) == {name for name, role in ROLES.items() if role in ("tensor", "switch")}


# -- dynamic: the compiled search -----------------------------------------------------
@pytest.fixture(scope="module")
def model() -> object:
    """A random model whose eos row is scaled up, so hypotheses end at varied steps (n_best
    and the length options then change where the beam stops)."""
    keras.utils.set_random_seed(21)
    m = build_model(dataclasses.replace(tiny_model_config(num_heads=2, max_length=40), share_embeddings="none"),
                    VOCAB, VOCAB)
    table = m.output_embedding.embeddings
    table.assign(tf.tensor_scatter_nd_update(table, [[EOS_ID]], [table[EOS_ID] * 2.0]))
    return m


def run(model: object, options: DecodeConfig) -> tuple[object, dict[str, np.ndarray]]:
    """(the cached compiled search for `options`, its raw outputs on a fixed batch)."""
    fn = compiled(model, options, compile_search)
    source = tf.constant(random_source_batch(4, 6, VOCAB))
    shortlist = np.arange(VOCAB, dtype=np.int32) if options.shortlist else np.zeros([0], np.int32)
    values, seed = SearchParams.pack(options)
    out = fn(source, tf.zeros([6, 0], tf.int32), values, seed, tf.constant(shortlist))
    return fn, {key: value.numpy() for key, value in out.items()}


# Per `tensor` option: options with it at its default, and another value that must change the
# output.  Per `switch`: two values, both on.  Both share one compiled search.
VALUE_CASES = {
    "n_best": (DecodeConfig(beam_size=4), {"n_best": 4}),
    "length_penalty": (DecodeConfig(beam_size=3, n_best=3), {"length_penalty": 0.0}),
    "max_length_a": (DecodeConfig(beam_size=1, max_length_b=1), {"max_length_a": 0.0}),
    "max_length_b": (DecodeConfig(beam_size=1), {"max_length_b": 1}),
    "sampling_temperature": (DecodeConfig(beam_size=4, sampling_topk=10, seed=7), {"sampling_temperature": 0.05}),
    "coverage_penalty": (DecodeConfig(beam_size=3, n_best=3, coverage_penalty=0.2), {"coverage_penalty": 2.0}),
    "sampling_topp": (DecodeConfig(beam_size=4, sampling_topp=0.2, seed=7), {"sampling_topp": 0.95}),
    # the shortlist's value is the caller's (it picks the ids): the graph only knows it is on
    "shortlist": (DecodeConfig(beam_size=2, shortlist=5), {"shortlist": 9}),
}
UNCHANGED_OUTPUT = {"shortlist"}


def test_every_value_option_has_a_case() -> None:
    assert set(VALUE_CASES) == set(TENSOR_OPTIONS)
    for name, (base, _) in VALUE_CASES.items():
        if ROLES[name] == "tensor":
            assert getattr(base, name) == DEFAULTS[name], f"{name}: start from the default"


@pytest.mark.parametrize("name", sorted(VALUE_CASES))
def test_a_value_option_reuses_the_trace_and_changes_the_output(model: object, name: str) -> None:
    base, change = VALUE_CASES[name]
    changed = dataclasses.replace(base, **change)
    assert graph_key(changed) == graph_key(base)
    fn, before = run(model, base)
    fn_again, after = run(model, changed)
    assert fn_again is fn and tracing_counts(model)[graph_key(base)] == 1, f"{name} retraced"
    differs = [key for key in before if before[key].shape != after[key].shape
               or not np.allclose(before[key], after[key])]
    if name in UNCHANGED_OUTPUT:
        assert not differs, f"{name}: {differs} changed"
    else:
        assert differs, f"changing {name} changed nothing: its value is baked into the compiled search"


GRAPH_CASES = {
    "beam_size": (DecodeConfig(beam_size=2, n_best=1), {"beam_size": 3}),
    "sampling_topk": (DecodeConfig(beam_size=2, sampling_topk=3, seed=1), {"sampling_topk": 5}),
    "coverage_penalty": (DecodeConfig(beam_size=2), {"coverage_penalty": 0.3}),  # switched on
    "sampling_topp": (DecodeConfig(beam_size=2, sampling_topk=3, seed=1), {"sampling_topp": 0.5}),
    "shortlist": (DecodeConfig(beam_size=2), {"shortlist": 7}),
}


def test_every_graph_option_and_switch_has_a_case() -> None:
    assert set(GRAPH_CASES) == {name for name, role in ROLES.items() if role in ("graph", "switch")}


@pytest.mark.parametrize("name", sorted(GRAPH_CASES))
def test_a_graph_option_compiles_its_own_search(model: object, name: str) -> None:
    base, change = GRAPH_CASES[name]
    changed = dataclasses.replace(base, **change)
    assert graph_key(changed) != graph_key(base)
    fn, _ = run(model, base)
    other, _ = run(model, changed)
    assert other is not fn
    counts = tracing_counts(model)
    assert counts[graph_key(base)] == counts[graph_key(changed)] == 1

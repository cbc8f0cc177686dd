"""YAML read with a bound on what its aliases expand to, for every YAML mt-cli loads.

`yaml.safe_load` shares the object behind an alias, so parsing "nine levels of nine aliases"
(a 447-byte "billion laughs") is cheap, but everything that walks the result afterwards (path
resolution, validation, the repr in an error) pays for 9^9 values: 36 s and a MemoryError,
or a 351 MB error line. Ordinary anchors and aliases (a shared corpus section, a preset's
defaults) stay welcome: only an expansion beyond MAX_NODES values is refused, before
anything is built, and a self-referencing alias (`&a [*a]`, infinite) always is.
"""

from __future__ import annotations

from typing import Any

import yaml

# A full config is about 100 values; a long data.train list a few thousand.
MAX_NODES = 100_000


class AliasBomb(ValueError):
    """The document's aliases expand beyond MAX_NODES values, or refer to themselves."""


def load_yaml_text(text: str, max_nodes: int = MAX_NODES) -> Any:
    """`yaml.safe_load(text)`, refused (AliasBomb) when its aliases expand to more than
    `max_nodes` values; PyYAML's own errors pass through."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _Budget(max_nodes).size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


class _Budget:
    """Counts the values a node graph expands to, each shared node once (memoised), so the
    count itself costs the document's size, not its expansion."""

    def __init__(self, max_nodes: int) -> None:
        self.max_nodes = max_nodes
        self.sizes: dict[int, int] = {}
        self.open: set[int] = set()

    def size(self, node: yaml.Node) -> int:
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        if key in self.open:
            raise AliasBomb("an alias refers to the collection that holds it (an endless value)")
        self.open.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total += self.size(child)
            if total > self.max_nodes:
                raise AliasBomb(f"its aliases expand to more than {self.max_nodes} values (an alias "
                                "bomb?); a config needs a few hundred: write the values out or alias less")
        self.open.discard(key)
        self.sizes[key] = total
        return total

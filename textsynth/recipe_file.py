"""Reading a recipe file: UTF-8, bounded in size, YAML without surprises.

A recipe file is at most :data:`MAX_RECIPE_BYTES`; a key given twice in one mapping is
an error (YAML would keep the last one silently); aliases may expand to at most
:data:`MAX_RECIPE_NODES` nodes and :data:`MAX_RECIPE_CHARS` characters, so an alias
bomb is refused in milliseconds. Every problem is a :class:`RecipeError` with the file
and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from textsynth.errors import RecipeError

__all__ = ["MAX_RECIPE_BYTES", "MAX_RECIPE_CHARS", "MAX_RECIPE_NODES", "parse_yaml",
           "read_recipe_text"]

MAX_RECIPE_BYTES = 32 * 2**20
MAX_RECIPE_NODES = 2_000_000  # after alias expansion
MAX_RECIPE_CHARS = 64 * 2**20  # of scalar text, after alias expansion


def read_recipe_text(path: Path) -> str:
    """The text of a recipe file (UTF-8, at most :data:`MAX_RECIPE_BYTES`)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"cannot read the recipe: {exc.strerror or exc}", file=str(path)) \
            from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"the recipe is larger than {MAX_RECIPE_BYTES:,} bytes",
                          file=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RecipeError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", file=str(path),
                          field=f"line {line}") from None


if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in


class _RecipeLoader(_BaseLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML would keep the
    last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class says so
                continue
            if duplicate:
                raise RecipeError(f"duplicate key {key!r} (each key may appear once)",
                                  field=f"line {key_node.start_mark.line + 1}")
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _expanded_size(node: yaml.Node, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Nodes and scalar characters ``node`` stands for once every alias is expanded;
    linear in the distinct nodes (an alias is the same node object as its anchor)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    if isinstance(node, yaml.ScalarNode):
        size = (1, len(node.value))
    else:
        children = (node.value if isinstance(node, yaml.SequenceNode)
                    else [n for pair in node.value for n in pair])
        nodes, chars = 1, 0
        for child in children:
            n, c = _expanded_size(child, memo)
            nodes, chars = nodes + n, chars + c
        size = (nodes, chars)
    memo[id(node)] = size
    return size


def parse_yaml(text: str, file: str | None = None) -> Any:
    """Parse one YAML document with the recipe limits (see the module docstring)."""
    loader = _RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes, chars = _expanded_size(node, {})
        if nodes > MAX_RECIPE_NODES or chars > MAX_RECIPE_CHARS:
            raise RecipeError(f"aliases expand to {nodes:,} nodes and {chars:,} characters "
                              f"(at most {MAX_RECIPE_NODES:,} and {MAX_RECIPE_CHARS:,})",
                              file=file)
        return loader.construct_document(node)
    except RecipeError as exc:
        raise RecipeError(exc.detail, file=file, field=exc.field) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise RecipeError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=file,
                          field=where) from None
    except RecursionError:
        raise RecipeError("the YAML is nested too deeply", file=file) from None
    finally:
        loader.dispose()

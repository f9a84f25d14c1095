"""Overrides: changes to a recipe from the command line or from code, in one place.

``textsynth run`` options (``--out``, ``--per-label``, ``--seed``, ``--backend``,
``--model``, ``--base-url``, ``--set``) and ``translate``/``paraphrase``'s
``--option KEY=VALUE`` all come here; :meth:`textsynth.recipe.Recipe.with_overrides`
applies them and validates the result like a recipe file.

>>> apply_overrides({"backend": {"type": "openvino", "options": {}}, "export": {}},
...                 {"base_url": "http://127.0.0.1:8000/v1"})["backend"]
{'type': 'openai', 'options': {'base_url': 'http://127.0.0.1:8000/v1'}}
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from textsynth.errors import RecipeError

__all__ = ["apply_overrides", "backend_options", "parse_assignments"]

# a URL names an OpenAI-compatible endpoint: the backend that speaks to one
URL_BACKEND = "openai"


def parse_assignments(items: Iterable[str], field: str, option: str = "--set"
                      ) -> dict[str, Any]:
    """``KEY=VALUE`` items as a mapping; each value is read as YAML (``0.5``, ``[a, b]``,
    ``true``), so it has the type a recipe file would give it."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"{option} {item!r} is not KEY=VALUE", field=field)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise RecipeError(f"{option} {item!r}: the value is not YAML ({problem})",
                              field=field) from None
    return out


def backend_options(model: str | None, items: Iterable[str] = ()) -> dict[str, Any]:
    """Backend options from ``--model`` and ``--option KEY=VALUE`` items."""
    options = parse_assignments(items, "backend.options", "--option")
    return {"model": model, **options} if model else options


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """``data[a][b][c] = value`` for ``a.b.c``, creating mappings that are missing."""
    *parents, last = path.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parents[:i + 1])
            raise RecipeError(f"--set {path}: {where} is not a mapping", field=path)
        node = child
    node[last] = value


def apply_overrides(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a recipe's data with ``changes`` applied (``None`` values are ignored).

    Keys: ``set`` (``{"generation.temperature": 0.5}``: any field by its dotted path,
    applied first), ``out``, ``per_label``, ``seed``, ``backend`` (a new type starts
    with empty options), ``model`` and any other backend option. A ``base_url`` without
    a ``backend`` switches to the ``openai`` backend, which speaks to any
    OpenAI-compatible endpoint.
    """
    out = copy.deepcopy(dict(data))
    changes = {k: v for k, v in changes.items() if v is not None}
    for path, value in (changes.pop("set", None) or {}).items():
        _set_path(out, path, value)
    if "base_url" in changes and "backend" not in changes:
        changes["backend"] = URL_BACKEND
    if "out" in changes:
        out.setdefault("export", {})["dir"] = str(changes.pop("out"))
    for key in ("per_label", "seed"):
        if key in changes:
            out[key] = changes.pop(key)
    backend = out.setdefault("backend", {"type": "openvino", "options": {}})
    if "backend" in changes:
        new_type = changes.pop("backend")
        if new_type != backend.get("type"):
            backend = out["backend"] = {"type": new_type, "options": {}}
    if changes:
        backend.setdefault("options", {}).update(changes)
    return out

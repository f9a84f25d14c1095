"""Executors: where a recipe's generation requests run.

``local`` (the default) builds the recipe's backend in this process. ``ray`` builds a
:class:`~textsynth.executors.ray.RayExecutor`: a pool of Ray actors, each holding its
own instance of the recipe's backend. Either way the engine sees one
:class:`~textsynth.backends.Backend` and keeps planning, quotas, top-up, the quality
gate and the run store in this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textsynth.backends import Backend, create_backend

if TYPE_CHECKING:
    from textsynth.recipe import Recipe

__all__ = ["build_backend"]


def build_backend(recipe: Recipe) -> Backend:
    """The backend the engine sends the recipe's requests to, as ``execution`` asks."""
    if recipe.execution.engine == "ray":
        from textsynth.executors.ray import RayExecutor

        return RayExecutor(recipe.backend.type, recipe.backend.options, recipe.execution)
    return create_backend(recipe.backend.type, recipe.backend.options)

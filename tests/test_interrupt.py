"""Ctrl-C and SIGTERM keep what was paid for: a real ``textsynth run`` process, a real
signal.

The first Ctrl-C (or SIGTERM, what ``kill``, ``timeout`` and container or job managers
send) stops sending, stores the answers already on the wire (they arrive within the
grace period), prints how to resume and exits 130 (143 for SIGTERM); resuming asks
nothing that was answered. A second one exits at once.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from textsynth.testing import FaultServer

INTERRUPTED = "interrupted: run the same command again to resume"
TERMINATED = "stopped by SIGTERM: run the same command again to resume"
# each stopping signal: the exit status and the line that says how to resume
HUNG_UP = "stopped by SIGHUP (its terminal closed): run the same command again to resume"
STOPS = pytest.mark.parametrize("signum, status, message", [
    (signal.SIGINT, 130, INTERRUPTED), (signal.SIGTERM, 143, TERMINATED),
    (getattr(signal, "SIGHUP", 1), 129, HUNG_UP)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"])
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _recipe(write_recipe: Callable[..., Path], tmp_path: Path, url: str) -> Path:
    return write_recipe({
        "name": "interrupt", "labels": {"turn_on": "switch on", "turn_off": "switch off"},
        "per_label": 30, "generation": {"examples_per_request": 3},
        "export": {"dir": str(tmp_path / "out")},
            "quality": {"near_duplicates": False, "novelty": False, "semantic": False,
                        "classifier": False},
        "backend": {"type": "openai", "options": {"base_url": url, "model": "m",
                                                  "concurrency": 3}},
    })


def _in_a_terminal() -> None:
    """The signals of a command typed at a terminal: CI runs the tests under nohup (SIGHUP
    ignored) in a background job (SIGINT ignored), and a child inherits that."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(recipe: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "textsynth", "run", str(recipe), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_in_a_terminal)


def _wait_for(check: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@STOPS
def test_ctrl_c_stores_the_answers_in_flight_and_resume_sends_nothing_for_them(
        tmp_path: Path, write_recipe: Callable[..., Path], signum: int, status: int,
        message: str) -> None:
    with FaultServer(items=3, latency=1.0) as srv:
        recipe = _recipe(write_recipe, tmp_path, srv.url)
        proc = _start(recipe)
        # some answers stored, and three more on the wire
        _wait_for(lambda: sum(srv.served.values()) >= 3 and srv.inflight == 3)
        in_flight = srv.inflight
        proc.send_signal(signum)
        sent_at = time.monotonic()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == status, err
        assert message in err and "Traceback" not in err + out
        late = [at for at, _ in srv.arrivals if at > sent_at + 0.3]
        assert late == []  # nothing was sent after Ctrl-C
        answered = set(srv.served)
        assert in_flight and sum(srv.served.values()) == len(answered)
        db = sqlite3.connect(tmp_path / "out" / "textsynth.db")
        stored = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        db.close()
        assert stored == len(answered)  # the answers in flight were kept

        again = subprocess.run([sys.executable, "-m", "textsynth", "run", str(recipe),
                                "--quiet"], capture_output=True, text=True, timeout=120,
                               check=False)
        assert again.returncode == 0, again.stderr
        assert srv.duplicates() == {}  # resuming asked nothing that was answered before


def test_a_run_under_nohup_goes_on_when_its_terminal_closes(
        tmp_path: Path, write_recipe: Callable[..., Path]) -> None:
    # SIGHUP ignored (nohup): the run must not take it back and stop
    with FaultServer(items=3, latency=0.05) as srv:
        recipe = _recipe(write_recipe, tmp_path, srv.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "textsynth", "run", str(recipe), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        _wait_for(lambda: sum(srv.served.values()) >= 2)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "dataset of 60 rows written" in out


def test_sigint_stops_a_run_started_with_it_ignored(
        tmp_path: Path, write_recipe: Callable[..., Path]) -> None:
    # a shell starts a background job (`cmd &`) with SIGINT ignored; `kill -INT` must still
    # stop it as Ctrl-C does (only an ignored SIGHUP, nohup's, stays ignored)
    with FaultServer(items=3, latency=1.0) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "textsynth", "run",
             str(_recipe(write_recipe, tmp_path, srv.url)), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        _wait_for(lambda: sum(srv.served.values()) >= 3 and srv.inflight == 3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and INTERRUPTED in err, err


@STOPS
def test_a_second_ctrl_c_exits_at_once(tmp_path: Path, write_recipe: Callable[..., Path],
                                       signum: int, status: int, message: str) -> None:
    with FaultServer(items=3, latency=30.0) as srv:
        proc = _start(_recipe(write_recipe, tmp_path, srv.url))
        _wait_for(lambda: srv.inflight == 3)
        proc.send_signal(signum)
        time.sleep(0.3)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)  # the answers take 30 s: it did not wait
        assert proc.returncode == status and message in err and "Traceback" not in err
        assert sum(srv.served.values()) == 0  # no answer was awaited


def test_engine_interrupt_keeps_the_answers_in_flight(
        tmp_path: Path, interrupted_run: Callable[..., Any]) -> None:
    """The library's side of Ctrl-C: ``Engine.interrupt()`` and ``RunInterrupted``."""
    from textsynth.engine import Engine
    from textsynth.recipe import load_recipe

    with FaultServer(items=3, latency=0.5) as srv:
        recipe = load_recipe({
            "name": "interrupt", "labels": {"a": "a", "b": "b"}, "per_label": 30,
            "export": {"dir": str(tmp_path / "out")},
            "backend": {"type": "openai", "options": {"base_url": srv.url, "model": "m",
                                                      "concurrency": 4}}})
        engine = Engine(recipe)

        def stopping() -> None:
            assert engine.activity().startswith("stopping: storing the answers in flight")

        stopped = interrupted_run(engine, lambda: srv.served and srv.inflight >= 4,
                                  after=stopping)
        assert INTERRUPTED in str(stopped)
        assert stopped.stored == engine.store.completion_count() == len(srv.served)
        assert srv.inflight == 0 and srv.stats["requests"] == len(srv.served)
    from textsynth.result import StopReason

    assert {st.stop for st in engine.result.quotas.values()} == {StopReason.INTERRUPTED}


def test_a_local_models_batch_in_flight_is_finished_and_kept(
        tmp_path: Path, interrupted_run: Callable[..., Any]) -> None:
    """A local model's batch (vllm, transformers) runs on in its thread after Ctrl-C, and
    the process waits for it before it exits: its answers are stored, not dropped after
    the grace period (a vLLM run stopped by SIGTERM kept 64 answers, now 120, and took
    the same 21-22 s to stop)."""
    from textsynth import FakeBackend
    from textsynth.engine import Engine
    from textsynth.recipe import load_recipe

    class LocalModel(FakeBackend):
        calls_run_to_the_end = True

    recipe = load_recipe({
        "name": "local", "labels": {"a": "a", "b": "b"}, "per_label": 30,
        "export": {"dir": str(tmp_path / "out")}, "backend": {"type": "fake"},
        "quality": {"near_duplicates": False, "novelty": False, "semantic": False,
                    "classifier": False, "language_id": False}})
    lines = "1. please do a thing {seed}\n2. please do another thing {seed}"
    model = LocalModel({"batch_size": 4, "latency": 1.0}, responses=[lines])
    engine = Engine(recipe, backend=model)
    engine.interrupt_grace = 0.1  # far shorter than a batch

    def stopping() -> None:
        assert len(model.requests) == 4
        assert engine.activity().startswith("stopping: the model finishes the batch")

    interrupted_run(engine, lambda: model.calls >= 2,  # the second batch is being written
                    after=stopping)
    assert engine.store.completion_count() == len(model.requests) >= 8  # before: 4
    engine.store.close()


def test_a_killed_run_keeps_every_committed_answer_and_resume_never_asks_for_one(
        tmp_path: Path, write_recipe: Callable[..., Path]) -> None:
    """SIGKILL (no grace, no clean-up) while answers arrive and are committed in bursts:
    no row outlives the answer it came from, and the resumed run asks for none of the
    answers that were committed (their rows keep the time they were first stored)."""
    with FaultServer(items=3, latency=0.05, latency_sigma=0.5) as srv:
        recipe = write_recipe({
            "name": "killed", "labels": {"turn_on": "switch on", "turn_off": "switch off"},
            "per_label": 150, "generation": {"examples_per_request": 3},
            "export": {"dir": str(tmp_path / "out")},
            "quality": {"near_duplicates": False, "novelty": False, "semantic": False,
                        "classifier": False, "language_id": False},
            "backend": {"type": "openai", "options": {"base_url": srv.url, "model": "m",
                                                      "concurrency": 16}},
        })
        db_path = tmp_path / "out" / "textsynth.db"
        proc = _start(recipe)

        def stored() -> int:
            if not db_path.exists():
                return 0
            try:
                with sqlite3.connect(db_path, timeout=5) as db:
                    return int(db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
            except sqlite3.OperationalError:  # not created yet
                return 0

        _wait_for(lambda: stored() >= 20 and srv.inflight >= 8)
        proc.kill()
        proc.communicate(timeout=30)
        with sqlite3.connect(db_path) as db:
            before = dict(db.execute("SELECT key, created FROM completions").fetchall())
            row_keys = {json.loads(data)["request_id"]
                        for (data,) in db.execute("SELECT data FROM examples")}
        assert len(before) >= 20 and row_keys <= set(before)  # no row without its answer
        assert len(before) < 100  # killed mid-run: the rest is asked for below

        again = subprocess.run([sys.executable, "-m", "textsynth", "run", str(recipe),
                                "--quiet"], capture_output=True, text=True, timeout=300,
                               check=False)
        assert again.returncode == 0, again.stderr
        with sqlite3.connect(db_path) as db:
            after = dict(db.execute("SELECT key, created FROM completions").fetchall())
            summary = json.loads(db.execute(
                "SELECT value FROM meta WHERE key = 'summary'").fetchone()[0])
        assert {k: after[k] for k in before} == before  # none of them was asked again
        assert summary["cached"] == len(before) and len(after) > len(before)


def test_sigterm_outside_generation_stops_the_command_as_ctrl_c_does(
        tmp_path: Path, write_recipe: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM while the dataset is exported (the engine's handler is gone by then): one
    line and status 143, as Ctrl-C gives 130; the next run exports; ``main`` leaves the
    caller's SIGTERM handler as it found it."""
    import os

    from textsynth import cli
    from textsynth.export import dataset

    recipe = write_recipe({
        "name": "term", "labels": {"turn_on": "switch on"}, "per_label": 3,
        "export": {"dir": str(tmp_path / "out")},
        "backend": {"type": "fake", "options": {"responses": [
            '["turn the kitchen light on", "switch on the lamp in the hall", '
            '"put the porch light on please"]']}},
        "generation": {"examples_per_request": 3},
        "quality": {"near_duplicates": False, "novelty": False, "semantic": False,
                    "classifier": False, "language_id": False}})
    export = dataset.export_dataset

    def terminated_while_exporting(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return export(*args, **kwargs)

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(dataset, "export_dataset", terminated_while_exporting)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", str(recipe), "--quiet"])
    assert stopped.value.code == 143
    assert TERMINATED in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
    assert not list((tmp_path / "out").glob("*.jsonl"))  # nothing half-written

    monkeypatch.setattr(dataset, "export_dataset", export)
    cli.main(["run", str(recipe), "--quiet"])  # returns: the run finished
    assert sum(len(f.read_text().splitlines()) for f in (tmp_path / "out").glob("*.jsonl")) == 3

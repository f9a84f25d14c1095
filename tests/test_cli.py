from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from datasets import load_from_disk

from textsynth.cli import main

FAKE_LINES = "\n".join(f"{i}. please switch {{label}} item {i} code {{seed}}" for i in range(1, 4))


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textsynth", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def _fake_recipe(write_recipe, recipe_dict: dict, **options) -> Path:
    recipe_dict["backend"] = {"type": "fake", "options": {"responses": [FAKE_LINES], **options}}
    return write_recipe(recipe_dict)


def test_run_writes_dataset_and_summary(write_recipe, recipe_dict: dict, tmp_path: Path) -> None:
    path = _fake_recipe(write_recipe, recipe_dict)
    proc = _cli("run", str(path), "--per-label", "5", "--quiet")
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "top rejects" in line)
    assert header.split()[:3] == ["label", "rows", "req"] and "10/10" in proc.stdout
    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    assert sum(len(s) for s in ds.values()) == 10
    assert ds["train"].features["label"].names == ["turn_on", "turn_off"]
    assert (tmp_path / "out" / "README.md").is_file()


def test_labels_given_by_name_alone_get_a_note_and_still_run(write_recipe, recipe_dict: dict,
                                                            tmp_path: Path) -> None:
    assert "neither a description" not in _cli("run", str(_fake_recipe(
        write_recipe, recipe_dict)), "--per-label", "2", "--quiet").stderr
    recipe_dict["labels"] = ["turn_on", "turn_off"]  # names only
    path = _fake_recipe(write_recipe, recipe_dict)
    proc = _cli("run", str(path), "--per-label", "2", "--quiet", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "note: 2 of 2 labels have neither a description nor examples (turn_on, " \
        "turn_off)" in " ".join(proc.stderr.split())
    assert "4/4" in proc.stdout  # a note, not an error: the run goes on
    preview = _cli("preview", str(path), "-n", "1")
    assert preview.returncode == 0 and "Label names only" in preview.stdout


def test_a_run_short_of_its_quota_exits_3(write_recipe, recipe_dict: dict,
                                           tmp_path: Path) -> None:
    recipe_dict["generation"] = {"max_attempts": 1}  # one request of 3 lines per label
    proc = _cli("run", str(_fake_recipe(write_recipe, recipe_dict)), "--quiet")
    assert proc.returncode == 3, proc.stderr
    assert "3 short of the quota" in proc.stdout
    assert proc.stdout.count("attempt limit reached") == 2  # why, per label
    ds = load_from_disk(str(tmp_path / "out" / "dataset"))  # what was accepted is exported
    assert sum(len(s) for s in ds.values()) == 6


def test_a_run_stopped_by_its_budget_says_so_per_label(write_recipe, recipe_dict: dict,
                                                      tmp_path: Path) -> None:
    recipe_dict["budget"] = {"max_tokens": 60}
    recipe_dict["generation"] = {"max_tokens": 20}
    path = _fake_recipe(write_recipe, recipe_dict, batch_size=1)
    proc = _cli("run", str(path), "--quiet")
    assert proc.returncode == 3, proc.stderr
    out = " ".join(proc.stdout.split())  # the console wraps long lines
    assert "short of the quota (budget spent; raise budget.max_tokens" in out
    assert "attempt limit" not in out  # the budget stopped it, not the attempts


def test_set_overrides_any_recipe_field(write_recipe, recipe_dict: dict,
                                        tmp_path: Path) -> None:
    path = _fake_recipe(write_recipe, recipe_dict)
    proc = _cli("run", str(path), "--set", "generation.max_attempts=1", "--set",
                "per_label=6", "--quiet")
    assert proc.returncode == 3, proc.stderr  # one request of 3 lines per label
    assert "3 short of the quota" in proc.stdout
    bad = _cli("run", str(path), "--set", "generation.max_attemps=1", "--quiet")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
    assert "generation.max_attemps: unknown key" in bad.stderr


def test_a_run_that_accepts_nothing_exports_nothing_and_exits_3(
        write_recipe, recipe_dict: dict, tmp_path: Path) -> None:
    recipe_dict["generation"] = {"max_attempts": 2}
    recipe_dict["backend"] = {"type": "fake", "options": {
        "responses": ["As an AI language model I cannot do that"]}}
    proc = _cli("run", str(write_recipe(recipe_dict)), "--quiet")
    assert proc.returncode == 3, proc.stderr
    assert "nothing exported" in proc.stdout and "0/12" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "dataset").exists()  # no dataset that cannot be loaded
    assert (tmp_path / "out" / "textsynth.db").is_file()  # the paid completions are kept


def test_recipe_error_is_one_line_and_nonzero(write_recipe, recipe_dict: dict) -> None:
    recipe_dict["labelz"] = {}
    proc = _cli("run", str(write_recipe(recipe_dict)))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "labelz: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_undefined_template_variable_fails_before_any_request(
        write_recipe, recipe_dict: dict, tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text("Write {{ n }} for {{ lable }}")
    recipe_dict["template"] = "t.jinja"
    proc = _cli("run", str(_fake_recipe(write_recipe, recipe_dict)))
    assert proc.returncode == 2
    assert "'lable' is undefined" in proc.stderr
    assert not (tmp_path / "out" / "dataset").exists()


def test_missing_template_file(write_recipe, recipe_dict: dict) -> None:
    recipe_dict["template"] = "nowhere.jinja"
    proc = _cli("run", str(_fake_recipe(write_recipe, recipe_dict)))
    assert proc.returncode == 2 and "template file not found" in proc.stderr


def test_preview_prints_prompts_without_a_model(write_recipe, recipe_dict: dict) -> None:
    recipe_dict["backend"] = {"type": "transformers", "options": {"model": "/no/such/model"}}
    proc = _cli("preview", str(write_recipe(recipe_dict)), "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Example format:") == 3 and "switch something on" in proc.stdout


def test_preview_shows_the_prompts_of_a_run_with_the_same_set_and_seed(
        write_recipe, recipe_dict: dict, capsys) -> None:
    """``preview --set`` renders what ``run --set`` would send (it took no --set)."""
    path = str(write_recipe(recipe_dict))
    assert main(["preview", path, "-n", "1", "--set", "generation.style=continue",
                 "--set", "labels.turn_on.examples=[Lamp on please]"]) is None
    shown = capsys.readouterr().out
    assert "- Lamp on please\n-" in shown and "Example format:" not in shown
    recipe_dict["vary"] = {"mood": ["calm", "rushed", "grumpy", "cheerful"]}
    path = str(write_recipe(recipe_dict))
    main(["preview", path, "-n", "1"])
    first = capsys.readouterr().out
    main(["preview", path, "-n", "1", "--seed", "7"])
    assert capsys.readouterr().out != first  # another seed, another order of attributes
    with pytest.raises(SystemExit) as exc:
        main(["preview", path, "--set", "per_label=-1"])
    assert exc.value.code == 2 and "per_label" in capsys.readouterr().err


def test_main_in_process_reports_error(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", str(tmp_path / "missing.yaml")])
    assert exc.value.code == 2
    assert "recipe file not found" in capsys.readouterr().err


def test_kill_9_then_rerun_matches_clean_run(write_recipe, recipe_dict: dict,
                                             tmp_path: Path) -> None:
    recipe_dict["per_label"] = 40
    path = _fake_recipe(write_recipe, recipe_dict, latency=0.15, batch_size=1)
    proc = subprocess.Popen([sys.executable, "-m", "textsynth", "run", str(path), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "out" / "textsynth.db"
    deadline = time.time() + 60
    stored = 0
    while time.time() < deadline:
        if db.exists():
            try:
                stored = sqlite3.connect(db).execute(
                    "SELECT COUNT(*) FROM completions").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
            if stored >= 5:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert stored >= 5
    rerun = _cli("run", str(path), "-q")
    assert rerun.returncode == 0, rerun.stderr
    con = sqlite3.connect(db)
    total = con.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert total == 28  # 80 rows / 3 per request, every request stored exactly once
    resumed = [r[0] for r in con.execute("SELECT text FROM examples ORDER BY seq")]

    recipe_dict["export"]["dir"] = str(tmp_path / "clean")
    clean_path = write_recipe(yaml.safe_load(path.read_text()) | {"export": {
        "dir": str(tmp_path / "clean")}}, "clean.yaml")
    assert _cli("run", str(clean_path), "-q").returncode == 0
    clean = [r[0] for r in sqlite3.connect(tmp_path / "clean" / "textsynth.db").execute(
        "SELECT text FROM examples ORDER BY seq")]
    assert resumed == clean and len(set(clean)) == 80


# -- usage errors: one line on stderr, exit 2, never a traceback ---------------------------

def _main_exit(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("args", "expected"), [
    ([], "no command given"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["run"], "Missing argument"),
    (["run", "r.yaml", "--bogus"], "No such option: --bogus"),
    (["run", "r.yaml", "--per-label", "0"], "'--per-label'"),
    (["run", "r.yaml", "--per-label", "many"], "'--per-label'"),
    (["eval"], "Missing argument"),
    (["preview", "r.yaml", "-n", "0"], "'-n'"),
    # every prompt is rendered before any is shown: a huge -n is refused, not left to run
    (["preview", "r.yaml", "-n", "100000000"], "less than or equal to 10000"),
])
def test_usage_errors_are_one_line_and_exit_2(args: list[str], expected: str, capsys) -> None:
    code, _, err = _main_exit(args, capsys)
    assert code == 2
    assert err.strip().count("\n") == 0, err
    assert err.startswith("error: ") and expected in err
    assert "--help" in err and "Traceback" not in err


def test_usage_error_in_a_subprocess_has_no_traceback() -> None:
    proc = _cli("run", "--per-label", "0", "r.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_version_prints_the_version_and_exits_0(capsys) -> None:
    from textsynth import __version__

    code, out, err = _main_exit(["--version"], capsys)
    assert code == 0 and out.strip() == f"textsynth {__version__}" and not err


def test_a_custom_check_that_raises_ends_the_run_with_one_line(
        write_recipe, recipe_dict: dict, tmp_path: Path) -> None:
    (tmp_path / "mychecks.py").write_text("def picky(example):\n    return {}['missing']\n")
    recipe_dict["quality"]["custom"] = ["mychecks:picky"]
    path = _fake_recipe(write_recipe, recipe_dict)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "textsynth", "run", str(path), "-q"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "quality.custom.0: custom check picky raised KeyError" in proc.stderr
    db = tmp_path / "out" / "textsynth.db"
    paid = sqlite3.connect(db).execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert paid >= 1  # what was generated before the check failed is kept

    (tmp_path / "mychecks.py").write_text("def picky(example):\n    return True\n")
    rerun = subprocess.run([sys.executable, "-m", "textsynth", "run", str(path), "-q"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "12/12" in rerun.stdout


# -- eval on inputs that cannot give a meaningful score -------------------------------------

def _jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    import json

    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    return path


_WORDS = ["lamp", "light", "heater", "fan", "radio", "door", "blind", "kettle"]


def _rows(label: str, verb: str, n: int = 8) -> list[tuple[str, str]]:
    return [(f"please {verb} the {w} in room {i}", label) for i, w in enumerate(_WORDS[:n])]


def test_eval_with_a_single_class_training_file_is_one_line(tmp_path: Path) -> None:
    syn = _jsonl(tmp_path / "syn.jsonl", _rows("on", "switch on") + _rows("off", "switch off"))
    test = _jsonl(tmp_path / "test.jsonl", _rows("on", "turn on") + _rows("off", "turn off"))
    single = _jsonl(tmp_path / "single.jsonl", _rows("on", "power up"))
    proc = _cli("eval", str(syn), "--test", str(test), "--train-real", str(single),
                "--no-embeddings")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "real training set needs rows for at least two test labels" in proc.stderr
    proc = _cli("eval", str(syn), "--test", str(single), "--no-embeddings")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "the test set has 1 label; a classifier needs at least two" in proc.stderr


def test_eval_on_its_own_training_data_warns_of_overlap(tmp_path: Path) -> None:
    import json

    syn = _jsonl(tmp_path / "syn.jsonl", _rows("on", "switch on") + _rows("off", "switch off"))
    proc = _cli("eval", str(syn), "--test", str(syn), "--no-embeddings", "--json")
    assert proc.returncode == 0, proc.stderr
    notes = json.loads(proc.stdout)["notes"]
    assert any("train and test overlap: 16 of 16 test texts (100%)" in n for n in notes)
    other = _jsonl(tmp_path / "test.jsonl", _rows("on", "turn on") + _rows("off", "turn off"))
    proc = _cli("eval", str(syn), "--test", str(other), "--no-embeddings", "--json")
    assert not any("overlap" in n for n in json.loads(proc.stdout)["notes"])


@pytest.mark.parametrize("case", ["recipe-latin1", "template-latin1", "template-1/0",
                                  "template-loop-out", "schema-colon"])
def test_bad_inputs_are_one_line_and_exit_2(case: str, write_recipe, recipe_dict: dict,
                                            tmp_path: Path, capsys) -> None:
    if case == "template-latin1":
        (tmp_path / "t.jinja").write_bytes("Schreibe f\u00fcr {{ label }}".encode("latin-1"))
        recipe_dict["template"] = "t.jinja"
    elif case == "template-1/0":
        (tmp_path / "t.jinja").write_text("Write {{ n / 0 }} for {{ label }}")
        recipe_dict["template"] = "t.jinja"
    elif case == "template-loop-out":
        (tmp_path / "etc").symlink_to("/etc")
        (tmp_path / "t.jinja").write_text("{% include 'etc/passwd' %} {{ label }}")
        recipe_dict["template"] = "t.jinja"
    elif case == "schema-colon":
        recipe_dict["schema"] = ":"
    path = write_recipe(recipe_dict)
    if case == "recipe-latin1":
        path.write_bytes(path.read_bytes() + "description: caf\u00e9\n".encode("latin-1"))
    code, out, err = _main_exit(["preview", str(path)], capsys)
    assert code == 2, err
    assert err.strip().count("\n") == 0 and err.startswith("error: ")
    assert "root:" not in out + err  # nothing of /etc/passwd
    expected = {"recipe-latin1": "not UTF-8", "template-latin1": "not UTF-8",
                "template-1/0": "ZeroDivisionError", "template-loop-out": "outside the template",
                "schema-colon": "schema: expected 'module:Class'"}[case]
    assert expected in err


@pytest.mark.parametrize("command", ["translate", "paraphrase"])
def test_translate_and_paraphrase_take_max_tokens(command: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A label left short by answers cut off at max_tokens is told to raise it; these two
    commands had no way to."""
    from textsynth import augment

    seen: dict = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop here: only the options matter

    monkeypatch.setattr(augment, command, fake)
    source = tmp_path / "s.jsonl"
    source.write_text('{"text": "lights on", "label": "on"}\n')
    args = [command, str(source), "--max-tokens", "300", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit):
        main([*args, "--to", "de"] if command == "translate" else args)
    assert seen["max_tokens"] == 300

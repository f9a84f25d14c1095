"""The form rule: shape, not topic; English only; real requests pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsynth.example import Example
from textsynth.quality.form import FormFilter, form_problem

SHARED = Path(__file__).resolve().parents[3] / "shared" / "eval"

# candidates a small model wrote for a smart-home recipe, each with the reason it is junk
JUNK = [
    ("**Adjusting the thermostat**: 3", "markup"),
    ("Switch off your computer or smartphone:", "markup"),
    ("Turn off lights in all home appliances -", "markup"),
    ("2. Please lock the door", "markup"),
    ("Using AI to automate the alarm, 2. You can set your alarm to wake up at 6", "run_on_list"),
    ("You can turn off a smart light bulb", "advice"),
    ("How to stop desk lights from staying hot", "advice"),
    ("Here\u2019s how to make it shine", None),  # meta_text's job, not this rule's
    ("I\u2019m so happy it's not too warm to go outside", "advice"),
    ("Switching on a light", "narration"),
    ("Optimizing Climate Modeling", "narration"),
    ("Lock it. Then sleep. Then wake up at noon. Then go.", None),  # short sentences
    ("I locked the door. It was late. The house was quiet. Everyone slept.",
     "several_sentences"),
    ("Turn off the refrigerator light off", "doubled_particle"),
    ("Turn on the computer desk lights on?", "doubled_particle"),
    ("Lock the front door to the front door", "repeated_word"),
    ("Please lock the door to the kitchen, please", "repeated_word"),
    ("Lock the door to the front door to the kitchen", "repeated_word"),
    ('The voice will be saying "Please lock the door to the house', "quote"),
    ("If you're not ready to lock the front door, just say \u201cplease", "quote"),
    ("Turn off the sink?", "question_mark"),
    ("Light off the bathroom?", "question_mark"),
    ("Switch on the light switch?", "question_mark"),
    ("Add a bit cooler to the bedroom down to 19?", "degree"),  # the first cue that fits
    ("Add a bit warmer to the bathroom shower", "degree"),
    ("Please add a little more cooler to the bedroom", "degree"),
    ("Can you put a bit louder music on", "degree"),
    ("Alarm for 8 noon", "clock"),
    ("Alarm for 11:15 noon", "clock"),
    ("Wake me up at 5 midnight", "clock"),
    ("Wake me at 7:75 tomorrow", "clock"),
    ("Set an alarm for 25:00", "clock"),
    ("Book a table for two at 14 pm", "clock"),
    ("Alarm for 7pm morning please", "clock"),
    ("Wake me at 9 am in the evening", "clock"),
    ("Set the alarm for 6:30 a.m. this afternoon", "clock"),
    ("The next step involves setting the temperature to 18 degrees", "advice"),
    # from a bank recipe with label names only
    ("(a bonus example to make your message about cash)", "aside"),
    ("(go to cash)", "aside"),
    ("<<Misplaced Stressed Individuals on Top Up, Featureblin'>>", "aside"),
    ("https://thispassengeressuppliedriver.herodesoft.com/depositing-transfer-bill/", "link"),
    ("Check the rates at www.bank.example today", "link"),
]

REQUESTS = [
    "Turn on the kitchen lights",
    "Can you switch the lamp on in the bedroom?",
    "Please let me know the weather in Paris tomorrow",
    "Let me see the movie schedule for tonight",
    "Looking for a tibetan restaurant for two",
    "How do I activate my new card?",
    "Why was I charged twice for the same order?",
    "My card still hasn't arrived",
    "Set the alarm for 7:30 tomorrow",
    # a degree said as one, and things added
    "Make it a bit warmer in the living room",
    "Add some Tommie Sunshine to my chill out playlist",
    "Add a little jazz to my dinner playlist",
    "Turn the music a bit louder",
    # times a clock shows, and numbers that are not times
    "Alarm for 12 noon",
    "Wake me at noon",
    "Lock up at 12:00 midnight",
    "Book a table for 4 at 8 pm",
    "Set an alarm for 6:30 a.m.",
    "Wake me at 23:45",
    "What will the weather be at 00:17 am",
    "Alarm for 7 to 10",
    "Wake me at 7 am tomorrow morning",
    "Set an alarm for 1 am tonight",
    "Set an alarm for 6 pm this evening",
    "Alarm at 7 am in the morning",
    "Play The Next Step soundtrack",
    "Find the TV show The Next Step",
    "Set the temperature to 21 degrees",
    "Play 1999 by Prince",
    "Play Bohemian Rhapsody by Queen.",
    # brackets inside a request, and names that end like an address
    "Play Remember (Walking in the Sand)",
    "Look for the Itv.com song",
    "(Please) lock the front door",
    "Find Trauma Center: New Blood, an album",
    "Bring me to the nearest gas station",
    "Ring my phone please",
    "Play some P. J. Proby",
    "Turn on the lights on the porch",
    "Switch the hallway light off",
    # a word said twice that is a name, a first word (verb and noun) or in a long text
    "Play Run Rudolph Run",
    "Write a song for me",
    "Give me three examples of a metaphor",
    "Show me the TV show Limit of Love",
    'Play "Hey Jude" by the Beatles',
    # questions: a word in them asks
    "Could you put on the lights?",
    "Is the front door locked?",
    "Lights on or off?",
    "When's Fools for Luck showing?",
    "Turn off the lights in your home",  # without seeds, "your" is not judged
    "Please turn on the porch light and then lock the front door, the back door and the garage",
]


@pytest.mark.parametrize(("text", "reason"), JUNK)
def test_junk_shapes_are_named(text: str, reason: str | None) -> None:
    found = form_problem(text)
    assert (found[0] if found else None) == reason


@pytest.mark.parametrize("text", REQUESTS)
def test_requests_keep_their_form(text: str) -> None:
    assert form_problem(text) is None


def test_rule_reports_the_reason_and_skips_other_languages() -> None:
    rule = FormFilter()
    verdict = rule(Example(text="Switching on a light", label="x"))
    assert not verdict.keep and verdict.reason == "form:narration"
    assert rule(Example(text="Turn the heating down", label="x")).keep
    # the cues are English words: a German gerund-like word is not judged
    assert rule(Example(text="**Licht an**:", label="x", language="de")).keep


@pytest.mark.skipif(not (SHARED / "snips" / "train.jsonl").exists(), reason="no SNIPS data")
def test_real_requests_almost_never_fail() -> None:
    rows = [json.loads(line) for line in
            (SHARED / "snips" / "train.jsonl").read_text().splitlines()]
    failed = [r["text"] for r in rows if form_problem(r["text"])]
    assert len(failed) / len(rows) < 0.005, failed[:20]


@pytest.mark.skipif(not (SHARED / "snips" / "train.jsonl").exists(), reason="no SNIPS data")
def test_no_real_request_is_an_aside_or_a_link() -> None:
    files = [SHARED / "snips" / "train.jsonl", *sorted(SHARED.glob("xsid/*/dev.jsonl"))]
    texts = [json.loads(line)["text"] for f in files for line in f.read_text().splitlines()]
    assert len(texts) > 13_000
    found = [(t, r) for t in texts if (r := form_problem(t)) and r[0] in ("aside", "link")]
    assert not found, found[:5]


@pytest.mark.parametrize(("text", "reason"), [
    ("She played a lot of music.", "narration"),
    ("Do you want to turn off lights on and off?", "narration"),
    ("Who's turning on the lights?", "narration"),
    ("5 new commands to turn off the lights in the bathroom", "task_text"),
    ("The command can be written in the format of a question", "task_text"),
    ("Write 5 short requests to add something to your playlist.", "task_text"),
    ("Here are three more commands to lock the door", "task_text"),
    ("Let's do a multi-round chat with a person who wants lights", "advice"),
    ("Lock doors, lock doors, lock doors, do doors", "repetitive"),
])
def test_more_junk(text: str, reason: str) -> None:
    found = form_problem(text)
    assert found is not None and found[0] == reason


@pytest.mark.parametrize("text", [
    "In a smart home setting, users can easily adjust the temperature",
    "In today's fast pace of life, lights are flashy",
    "User will change air",
    "People often say turn on the lights",
    "You're about to switch lights to night room.",
    "Sentence 1",
    "What to do",
])
def test_narration_openings(text: str) -> None:
    found = form_problem(text)
    assert found is not None and found[0] == "advice"


@pytest.mark.parametrize(("text", "reason"), [
    ("Shall I turn on the lights in the bedroom?", "narration"),
    ("How'd you like to light up your bedroom?", "narration"),
    ("Use your smartphone to play your latest album", "advice"),
    ("By waking up at 7:30 AM tomorrow, I'd like an alarm", "advice"),
])
def test_offers_and_advice(text: str, reason: str) -> None:
    found = form_problem(text)
    assert found is not None and found[0] == reason


SMART_HOME_SEEDS = [
    "Turn the kitchen lights on", "Switch the desk lamp off", "Put the heating up to 21 degrees",
    "Play some relaxing jazz", "Put on my workout playlist", "Wake me up at 6:30 tomorrow",
    "Can you set an alarm for noon on Saturday?", "Please lock the front door",
    "Lock all the doors for the night", "Can you lock up the house?",
]


@pytest.mark.parametrize(("seeds", "text", "reason"), [
    # no seed says "your": a candidate that does speaks of the listener's things
    (SMART_HOME_SEEDS, "Switch off lights in your home", "form:your"),
    (SMART_HOME_SEEDS, "Lights off your car", "form:your"),
    (SMART_HOME_SEEDS, "Your front door, lock it", "form:your"),
    (SMART_HOME_SEEDS, "Lock the door to my bedroom", None),
    # a name or a title is not the listener's
    (SMART_HOME_SEEDS, "Play All Of Your Toys by Chris Ledoux", None),
    # a seed that says it: the recipe's users do
    ([*SMART_HOME_SEEDS, "What are your opening hours?"], "Is your shop open on Sunday?", None),
    # fewer than ten seeds: too few to read a register from
    (SMART_HOME_SEEDS[:9], "Switch off lights in your home", None),
])
def test_register_read_from_the_seeds(seeds: list[str], text: str, reason: str | None) -> None:
    verdict = FormFilter(seeds=seeds)(Example(text=text, label="x"))
    assert (None if verdict.keep else verdict.reason) == reason
    # other languages are not judged
    assert FormFilter(seeds=seeds)(Example(text=text, label="x", language="de")).keep


@pytest.mark.skipif(not (SHARED / "snips" / "seeds_10.jsonl").exists(), reason="no SNIPS data")
def test_register_costs_few_real_rows() -> None:
    """With SNIPS's 70 seed examples (none says "your"), the rule drops under 0.5% of the
    13,084 real training rows, all cues together."""
    def texts(name: str) -> list[str]:
        return [json.loads(line)["text"] for line in
                (SHARED / "snips" / name).read_text().splitlines()]

    rule = FormFilter(seeds=texts("seeds_10.jsonl"))
    assert rule.no_your
    rows = texts("train.jsonl")
    verdicts = [(t, rule(Example(text=t, label="x"))) for t in rows]
    dropped = [(t, v.reason) for t, v in verdicts if not v.keep]
    assert len(dropped) / len(rows) < 0.005, dropped[:20]
    your = [t for t, reason in dropped if reason == "form:your"]
    assert 10 <= len(your) <= 20, your  # 17 real rows say "your" in lower case

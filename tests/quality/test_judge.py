"""Label names read as words, the same way wherever a label is shown or matched."""

from __future__ import annotations

import asyncio

import pytest

from textsynth.backends.fake import FakeBackend
from textsynth.classifiers import readable_label as used_by_evaluate
from textsynth.quality.judge import ModelJudge, readable_label


@pytest.mark.parametrize(("label", "words"), [
    ("AddToPlaylist", "add to playlist"),
    ("set_alarm", "set alarm"),
    ("SearchScreeningEvent", "search screening event"),
    ("turn-on lights", "turn on lights"),
    ("HTTPError", "http error"),
    ("play2Songs", "play2 songs"),
    ("weather/query", "weather query"),
])
def test_a_label_reads_as_words(label: str, words: str) -> None:
    assert readable_label(label) == words


def test_evaluation_and_the_judges_share_one_reading() -> None:
    assert used_by_evaluate is readable_label


def test_the_judge_prompt_names_labels_in_words_and_reads_answers_back() -> None:
    judge = ModelJudge({"AddToPlaylist": "add a song", "GetWeather": ""},
                       FakeBackend(responses=["It is get weather."]))
    prompt = judge.request("will it rain").messages[-1]["content"]
    assert "add to playlist" in prompt and "AddToPlaylist" not in prompt
    assert asyncio.run(judge.classify(["will it rain"])) == ["GetWeather"]

from __future__ import annotations

import pytest

from textsynth.errors import RecipeError
from textsynth.example import Example
from textsynth.quality.base import Verdict
from textsynth.quality.filters import (
    CustomFilter,
    LanguageFilter,
    LengthFilter,
    MetaTextFilter,
    PIIFilter,
    RegexFilter,
    SeedLeakFilter,
    load_callable,
)
from textsynth.quality.meta import instruction_lines
from textsynth.quality.pii import find_pii, mask_pii
from textsynth.templates import PromptTemplate


def reason(rule, text: str, label: str = "AddToPlaylist", language: str = "en") -> str:
    verdict = rule(Example(text, label, language))
    return "" if verdict.keep else verdict.reason


def test_length_counts_words_of_unspaced_scripts() -> None:
    rule = LengthFilter(min_words=3, max_words=12, min_chars=3, max_chars=80)
    assert reason(rule, "play jazz") == "too_short"
    assert reason(rule, "play some jazz") == ""
    assert reason(rule, "明天北京的天气怎么样") == ""  # ten words, no spaces
    assert reason(rule, "好的") == "too_short"
    assert reason(rule, " ".join(["very"] * 13)) == "too_long"
    assert reason(rule, "x" * 81 + " a b") == "too_long"


def test_regex_allow_and_deny() -> None:
    rule = RegexFilter(allow=[r"(?i)\bplaylist\b"], deny=[r"(?i)\bspotify\b"])
    assert reason(rule, "add Hello to my workout playlist") == ""
    assert reason(rule, "add Hello to my Spotify playlist") == "denied"
    assert reason(rule, "play Hello by Adele") == "not_allowed"


def test_bad_regex_is_a_recipe_error_naming_the_field() -> None:
    with pytest.raises(RecipeError) as info:
        RegexFilter(deny=["ok", "(unclosed"])
    assert info.value.field == "quality.deny.1"
    assert "(unclosed" in str(info.value)


TEMPLATE = PromptTemplate.load("utterances")
META = MetaTextFilter(
    ["AddToPlaylist", "BookRestaurant", "get_weather"],
    instruction_lines(TEMPLATE.source, [
        "short messages customers send to their bank",
        "Write 5 short requests people say to a voice assistant to   (style: a command).\n"
        "Example format:\n1. Please  .",
    ]))

# outputs of the embedded 135M model, verbatim
MODEL_JUNK = [
    ("I'm ready to assist you! Available requests are:", "assistant_speak"),
    ("Please upgrade to the latest version of your voice assistant", "assistant_speak"),
    ("I'm happy to provide you with a daily weather report.", "assistant_speak"),
    ("I can provide you with a list of the top 10 weather forecasts", "assistant_speak"),
    ("I'm sorry for any misinformed remarks, but I'm designed to find a book", "assistant_speak"),
    ("Here are five examples of voice commands that can be used to add a song", "meta_text"),
    ("Here is a sample response:", "meta_text"),
    ("Command: \"add\" to the music command", "meta_text"),
    ("I'm checking out the latest collection of books by [Author] on [Blogic]", "placeholder"),
    ("Add to playlist", "label_echo"),
    ("intent: get weather", "meta_text"),
    ("Get weather.", "label_echo"),
    ("Please get weather.", "label_echo"),  # the format example of a label without a description
    ("Please, add to playlist, please", "label_echo"),
    ("Now write 5 new ones", "prompt_echo"),
    ("Write 5 short requests people say to add a song", "prompt_echo"),
    ("messages customers send to their bank", "prompt_echo"),
]


@pytest.mark.parametrize(("text", "why"), MODEL_JUNK)
def test_meta_text_drops_small_model_junk(text: str, why: str) -> None:
    assert reason(META, text) == why


@pytest.mark.parametrize("text", [
    "add Hello by Adele to my workout playlist",
    "Can you check the weather forecast for Denver tomorrow?",
    "book a table for four at an Italian place tonight",
    "I'm looking for a movie theater with outdoor seating",
    "Spiel das neue Album von Herbert Grönemeyer",
    "明天北京的天气怎么样",
    "call me at [PHONE] when the table is ready",  # a PII mask is not a placeholder
    "play the playlist called get weather",  # a label name inside a real request
    "Please get weather for Paris",  # words more than the name
    "Please add a song or an album to my playlist",  # repeats the description: novelty's job
])
def test_meta_text_keeps_real_requests(text: str) -> None:
    assert reason(META, text) == ""


def test_meta_text_drops_repeated_vary_attributes() -> None:
    rule = MetaTextFilter(["PlayMusic"], attributes={"style": ["a casual request", "terse"]})
    assert reason(rule, "find it with the current style: a casual request") == "prompt_echo"
    assert reason(rule, "Here is a casual request for you") == "meta_text"
    assert reason(rule, "play something in a casual request mood") == "prompt_echo"
    assert reason(rule, "play something terse and casual") == ""  # one-word values are words


def test_pii_found_and_validated() -> None:
    assert [m.kind for m in find_pii("card 4111 1111 1111 1111, mail jo.doe+x@mail.co.uk")] \
        == ["card", "email"]
    assert find_pii("card 4111 1111 1111 1112") == []  # fails the Luhn check
    assert [m.kind for m in find_pii("IBAN DE89 3704 0044 0532 0130 00")] == ["iban"]
    # fails mod 97: not an IBAN (its digits may still pass as a card number)
    assert "iban" not in {m.kind for m in find_pii("IBAN DE89 3704 0044 0532 0130 01")}
    assert [m.kind for m in find_pii("account number 12345678")] == ["account"]
    assert [m.kind for m in find_pii("Ruf mich an unter 030 12345678")] == ["phone"]
    assert [m.kind for m in find_pii("电话 13812345678")] == ["phone"]
    assert [m.kind for m in find_pii("SSN 123-45-6789")] == ["ssn"]


@pytest.mark.parametrize("text", [
    "book a table for 4 at 7:30 pm on 2024-05-12",
    "will it snow in MT on june 13, 2038?",
    "rate this book 4 out of 6 points",
    "play the top 100 songs of 1999",
    "the best albums of 1990 2000 2010",
    "order code 2142000759",
    "2022-06-23 Sunny: 2022-06-23 23:41:42.115",
    "on 23.06.2022 14 30",
    "set the thermostat to 21.5 degrees",
])
def test_pii_leaves_dates_numbers_and_quantities_alone(text: str) -> None:
    assert find_pii(text) == []


def test_pii_reject_or_mask() -> None:
    text = "text me on +44 20 7946 0958 or write to jo@example.org"
    assert reason(PIIFilter("reject"), text) == "pii"
    verdict = PIIFilter("mask")(Example(text, "x"))
    assert verdict.keep
    assert verdict.text == "text me on [PHONE] or write to [EMAIL]"
    assert mask_pii("pay DE89 3704 0044 0532 0130 00 now") == "pay [IBAN] now"


@pytest.fixture(scope="module")
def language_rule() -> LanguageFilter:
    pytest.importorskip("lingua")
    return LanguageFilter(["en", "de", "zh"])


@pytest.mark.parametrize(("text", "language", "kept"), [
    ("add this song to my road trip playlist", "en", True),
    ("book a table for 2 at Chez Paul", "en", True),  # a French name in English
    ("play Daft Punk", "en", True),  # too short to judge
    ("Spiel etwas Jazz von Miles Davis", "en", False),
    ("Mets la chanson dans ma playlist", "en", False),
    ("明天北京的天气怎么样", "en", False),
    ("play 周杰伦 的歌 please", "en", False),  # mostly Chinese, mixed script
    ("Spiel etwas Jazz von Miles Davis", "de", True),
    ("Wie wird das Wetter morgen in Berlin", "de", True),
    ("what's the weather in Paris tomorrow", "de", False),
    ("播放 Taylor Swift 的歌", "zh", True),  # Chinese with a Latin name
    ("明天北京的天气怎么样", "zh", True),
    ("明日の東京の天気はどうですか", "zh", False),  # Japanese, not Chinese
])
def test_language_identification_on_real_text(language_rule, text: str, language: str,
                                              kept: bool) -> None:
    assert (reason(language_rule, text, language=language) == "") is kept


def test_unknown_language_code_is_a_recipe_error() -> None:
    pytest.importorskip("lingua")
    with pytest.raises(RecipeError, match=r"'xx'.*not a language code textsynth knows"):
        LanguageFilter(["xx"])


def test_a_language_lingua_does_not_know_is_kept_unchecked(
        caplog: pytest.LogCaptureFixture) -> None:
    """Amharic and Malayalam are languages (a corpus in them is what a user may be
    building), not typos: their rows pass unjudged, said once, where they used to stop
    the run, and translate had no way round it."""
    pytest.importorskip("lingua")
    with caplog.at_level("WARNING", logger="textsynth"):
        rule = LanguageFilter(["am", "ml", "am", "de"])
    assert rule.unchecked == {"am", "ml"}
    assert caplog.text.count("does not know Amharic (am)") == 1
    assert "Malayalam (ml)" in caplog.text
    english = "what's the weather in Paris tomorrow"
    assert reason(rule, english, language="am") == ""
    assert reason(rule, english, language="de") == "wrong_language"  # others still judged


def test_norwegian_is_checked_as_bokmal() -> None:
    pytest.importorskip("lingua")
    rule = LanguageFilter(["no"])
    assert not rule.unchecked
    assert reason(rule, "Hvordan blir været i Oslo i morgen", language="no") == ""
    assert reason(rule, "what's the weather in Paris tomorrow", language="no") == \
        "wrong_language"


SEEDS = {"AddToPlaylist": ["add Steve Jordan to inez's tgif",
                           "add this clint mansell song to latin pop classics"],
         "GetWeather": ["will it snow in MT on june 13, 2038?"]}


def test_seed_leak_drops_copies_and_never_repeats_the_seed() -> None:
    rule = SeedLeakFilter(SEEDS, threshold=0.8)
    copied = rule(Example("Add Steve Jordan to Inez's TGIF!", "AddToPlaylist"))
    assert not copied.keep and copied.reason == "seed_leak"
    assert "steve" not in copied.detail.lower() and "seed #1 of 'AddToPlaylist'" in copied.detail
    # a seed copied inside a longer text, under any label
    assert reason(rule, "hey please add this clint mansell song to latin pop classics now",
                  "PlayMusic") == "seed_leak"
    assert reason(rule, "will it snow in montana next tuesday") == ""
    assert reason(rule, "add a Nina Simone song to my evening jazz list") == ""


def _too_polite(example: Example) -> bool | str:
    return "please" not in example.text.lower() or "too_polite"


def test_custom_filter_return_values() -> None:
    rule = CustomFilter(_too_polite)
    assert reason(rule, "play jazz") == ""
    assert reason(rule, "play jazz please") == "too_polite"
    assert CustomFilter(lambda e: False, "never")(Example("x", "y")).reason == "never"
    assert not CustomFilter(lambda e: Verdict(False, "mine"))(Example("x", "y")).keep
    with pytest.raises(RecipeError, match="returned int"):
        CustomFilter(lambda e: 3)(Example("x", "y"))


def test_load_callable_errors_name_the_field() -> None:
    assert load_callable("textsynth.quality.pii:mask_pii") is mask_pii
    with pytest.raises(RecipeError) as info:
        load_callable("textsynth.quality.pii:nothing_here", "quality.custom.0")
    assert info.value.field == "quality.custom.0"
    with pytest.raises(RecipeError, match="module:function"):
        load_callable("no_colon")


def test_ascii_folded_patterns_find_what_the_patterns_find() -> None:
    """The meta-text and form rules search ASCII text lower-cased without re.I (faster):
    for any casing, the same matches as the case-insensitive patterns themselves."""
    import random
    import re

    from textsynth.quality import form, meta
    from textsynth.quality.normalize import AsciiFolded

    rng = random.Random(4)
    phrases = ["as an AI", "I'm happy to help", "Here are", "Sure, here", "for example",
               "Label: x", "Write 5 short requests", "new commands", "hope this helps",
               "turn on the light", "Intent:", "the request is", "chatbot", "ok"]
    folded = [meta._ASSISTANT, meta._META, form._TASK_WORDS]
    for _ in range(3000):
        words = [rng.choice(phrases) for _ in range(rng.randint(1, 3))]
        text = " ".join("".join(c.upper() if rng.random() < 0.3 else c for c in w)
                        for w in words)
        text += rng.choice(["", ".", "!", " please", " é", "\u212a"])  # and non-ASCII text
        for pattern in folded:
            got, want = pattern.search(text), pattern.pattern.search(text)
            assert (got and (got.span(), got[0])) == (want and (want.span(), want[0])), text
    with pytest.raises(ValueError, match="upper-case"):
        AsciiFolded(re.compile(r"\bAI\b", re.I))
    with pytest.raises(ValueError, match=r"re\.I"):
        AsciiFolded(re.compile(r"\bai\b"))

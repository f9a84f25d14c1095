"""Words a label's counter-examples use and its own examples do not.

Sentence embeddings hardly tell "lock" from "unlock" or "on" from "off", so the in-loop
classifier (:mod:`textsynth.quality.classifier`) also reads words: a candidate that uses
a word of one of its label's counter-examples which none of the label's seed examples
uses, and which is not a function word or a number, is a near miss. Words only, so it
judges every language.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["counter_words", "word_set"]

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
# words that say nothing of what is asked (and numbers), in English and the commonest
# articles and pronouns of a few other languages: a counter-example's "the", "my", "die"
# or "ten" must not drop a candidate ("Switch on my phone" is a near miss of
# turn_on_lights because of "phone", not "my"); "on", "off", "up", "down" and "not" are
# not among them
_FUNCTION_WORDS = frozenset(
    " ".join([
        "a an the this that these those my your our his her its their me i you we it they them",
        "is are am be was were been do does did to of for in at by with from and or but so if",
        "as please can could would will shall should may might must just some any all every",
        "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty",
        "hundred",
        "der die das den dem des ein eine einen einem einer und oder bitte mir mich ich du es ist",
        "mal doch le la les l un une du de et ou je tu il moi vous nous est el los las una uno y o",
        "por favor yo lo gli il un una e o per mi io di da del della che het een en",
    ]).split())


def word_set(text: str) -> set[str]:
    """The lower-cased words of ``text`` (letters only; an apostrophe inside a word stays)."""
    return {w.lower() for w in _WORD.findall(text.replace("\u2019", "'"))}


def counter_words(own: Sequence[str], counters: Sequence[str]) -> dict[str, str]:
    """The words of ``counters`` that no text of ``own`` uses and that are not function
    words, each with the first counter-example that has it.

    >>> counter_words(["Lock the back door"], ["Unlock the front door"])
    {'unlock': 'Unlock the front door', 'front': 'Unlock the front door'}
    """
    mine = set().union(*(word_set(t) for t in own)) if own else set()
    found: dict[str, str] = {}
    for text in counters:
        for word in _WORD.findall(text.replace("\u2019", "'")):
            word = word.lower()
            if word not in mine and word not in _FUNCTION_WORDS:
                found.setdefault(word, text)
    return found

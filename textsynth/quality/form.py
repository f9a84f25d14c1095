"""Form: does a candidate have the shape of something a user types or says?

A small model asked for requests often returns the right topic in the wrong form:
markup left from a list ("**Adjusting the thermostat**: 3"), a narration that
starts with a gerund ("Switching on the kitchen light"), advice to the reader
("You can turn off a smart bulb", "How to stop desk lights from ..."), or a
run-on list ("..., 2. You can set ..."), a command that ends in a question mark
("Turn off the sink?": no word in it asks), an aside in brackets ("(go to cash)"), a web
address, a degree where a thing belongs ("Add a bit warmer to the living room"), a time
no clock shows ("Alarm for 8 noon", "Wake me at 7:75", "Alarm for 7pm morning"), a
particle said twice ("Turn off the lamp off"), or a word said twice in a short request
("Lock the front door to the front door", "Please lock the kitchen door, please"), or an
unclosed quotation mark ('The voice will be saying "Please lock the door'). None of that
is a request, whatever its topic, and no embedding is needed to see it.

With seed examples, the rule also reads their register: when none of a recipe's seeds
(ten or more) says "your", a candidate that does ("Turn off the lights in your home",
"Lock the door to your bedroom") speaks of the listener's things, which the recipe's
users never do; it is dropped as ``form:your``. Names and titles ("play All Of Your
Toys") do not count.

The rule looks at shape only, never at topic, and only at English text (for
other languages it keeps everything). It keeps the forms users do write:
commands ("Turn the heating down"), requests ("Can you lock the door?"),
questions about their own affairs ("How do I activate my card?", "Why was I
charged twice?") and statements of need ("My card hasn't arrived").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from textsynth.example import Example
from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.quality.normalize import AsciiFolded

__all__ = ["FormFilter", "form_problem"]

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_MARKUP = re.compile(r"\*\*|__|##|`|^\s*[-*#>|]|[-*:|]\s*$|^\s*\d{1,3}\s*[.)]\s")
_RUN_ON_LIST = re.compile(r"[,;.:!?]\s*\(?\d{1,2}[.)]\s+\w")
# a row wholly in brackets is an aside ("(go to cash)", "<<Top up, Featureblin'>>"), and a
# web address is a link, not a request (none of 14,684 real SNIPS and xSID rows is either;
# names such as "Itv.com" have no "www." or "http")
_ASIDE = re.compile(r"^\s*[(\[<{].*[)\]>}]\s*$", re.S)
_LINK = re.compile(r"\bhttps?://|\bwww\.\w", re.I)
_ADVICE = re.compile(
    r"^(you (can|could|should|'ll|will|might|may|need to|have to|must)|how to|ways to"
    r"|tips? (for|to|on)|steps? to|this (is|will)|these are|those are|that's (a|the|how|why)"
    r"|it's (easy|important|a good|possible|time to)|there (are|is) (many|several|some|a few)"
    r"|i'?m (so |really )?(glad|happy|excited|thrilled|ready|here|delighted)"
    r"|let me (tell|explain|show you|help)|let's (talk|discuss|do)|in order to|using"
    r"|by using|to |what to|in (today's|our|my opinion|a (smart|world|busy|modern|typical))"
    r"|you('re| are)|use your|by \w+ing"
    r"|(the )?(next|first|last|final) step (is|involves|would be|will be)"
    r"|(the )?(users?|people|someone|everyone) (can|will|may|might|often|usually|says?"
    r"|wants?)|(sentence|example|request|command|item) \d)\b",
    re.I,
)
_NOT_GERUNDS = frozenset({
    "bring", "ring", "sing", "string", "swing", "spring", "sting", "king", "thing", "nothing",
    "something", "anything", "everything", "morning", "evening", "during", "ceiling", "ping",
    "ding", "wing", "bling", "looking",
})
_NARRATION = re.compile(
    r"^(she|he|they|we) (\w+ed|was|were|had|did|went|got|made|put|took|saw|said|told|gave)\b",
    re.I)
_TO_THE_USER = re.compile(
    r"^(do you (want|like|need|know how)|would you like|are you|have you (ever|got)"
    r"|what('s| is| are) your (favou?rite|plans?|name)|what do you (think|like|want)"
    r"|who's|who is|shall i|how('d| would) you like)\b", re.I)
_TASK_WORDS = AsciiFolded(re.compile(
    r"\b(new (commands|requests|ones|examples)|the (command|request|sentence|list) (can|could"
    r"|should|is|was)|(is|be|are) written|in the format|instead of \"|multi-round"
    r"|(chat|conversation) with (a|the) (person|user)"
    # the instruction echoed: "Write 5 short requests to add something to your playlist"
    r"|^(write|give|list|generate|create|here are) (me )?(\d+|two|three|four|five|six|seven"
    r"|eight|nine|ten|a few|some|several|more) ((short|new|more|different|other|simple) )*"
    r"(requests|commands|utterances|queries))\b", re.I))
# "Turn off the desk lamp off", "Turn on the lights on": the particle twice (none of
# 13,384 real SNIPS and xSID rows has it; "the lights on the porch" is not at the end)
_DOUBLED_PARTICLE = re.compile(r"\b(?:turn|switch)\w*\s+(on|off)\b(?:.*\boff\b|.*\b\1\W*$)",
                               re.I)
_COMMON = frozenset({
    "that", "this", "then", "than", "with", "from", "into", "onto", "what", "when", "where",
    "which", "there", "their", "them", "they", "have", "will", "would", "could", "should",
    "please", "some", "more", "very", "just", "also", "your", "about",
})
# a short request that says a lower-case word twice ("Lock the front door to the front
# door"): 0.2% of real SNIPS training rows ("Play opera music on google music"); a first
# word said again is left alone ("Show me the TV show ..."), except "please"
_TWICE_MAX_WORDS = 12
# the listener's things: 17 of 13,084 real SNIPS rows say it in lower case, none of 300 xSID
_YOUR = frozenset({"your", "yours", "yourself", "yourselves"})
_REGISTER_MIN_SEEDS = 10
# a question needs a word that asks: an auxiliary, a modal or a question word; a command
# with a question mark ("Turn off the sink?", "Light off the bathroom?") has none (8 of
# 13,384 real SNIPS and xSID rows: "Show me Born in America?")
_ASKING = frozenset(" ".join([
    "can could would will shall should may might must is are am was were do does did have has",
    "had what when where which who whom whose why how any anything anyone anybody there or",
    "what's when's where's who's how's why's that's it's there's isn't aren't wasn't weren't",
    "don't doesn't didn't won't wouldn't can't couldn't shouldn't haven't hasn't whats wheres",
]).split())
_SENTENCE = re.compile(r"[.!?]+(?:\s+|$)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_GREETING = re.compile(r"^(please|hey|hi|ok|okay)\b[,!]?\s*", re.I)
# a degree given where a thing belongs: "Add a bit warmer to the living room" (a verb
# that takes a thing, read after the "please" or greeting `_GREETING` takes off, then "a
# bit" and a comparative; "Make it a bit warmer" is a request; none of 14,084 real SNIPS
# and xSID English rows, where "Add some <artist>" is common)
_DEGREE_AS_THING = re.compile(
    r"^(?:(?:can|could|would|will) you )?(add|put|give|bring|send)\s+"
    r"(?:a (?:little|bit|touch|tad)(?: bit)?|slightly|somewhat)\s+(?:more\s+)?"
    r"(warmer|cooler|colder|hotter|brighter|dimmer|darker|lighter|louder|quieter|softer"
    r"|faster|slower|higher|lower|stronger|weaker)\b", re.I)
# a time of day that cannot be: "8 noon", "11:15 midnight", "7:75", "25:00", "13 pm"
# (none of 14,084 real SNIPS and xSID English rows has one; "12 noon", "at noon" and
# "00:30 am" pass)
_DIGIT = re.compile(r"\d")
_CLOCK = re.compile(
    r"(?<![\d:.,/-])(?P<h>\d{1,2})(?::(?P<m>\d{2}))?(?![\d:.,/])\s*"
    r"(?:(?P<day>noon|midday|midnight)\b|(?P<half>[ap])\.?\s?m\b\.?)?", re.I)
# what a time needs besides its number: minutes (a colon), noon or midnight, or am/pm
# (a text without any of them has no time for _CLOCK to find, only counts)
_TIME_PART = re.compile(r"noon|midday|midnight|[ap]\.?\s?m\b", re.I)
# the part of the day said after an am/pm time: "7pm morning" and "9 am in the evening"
# cannot be (none of 14,084 real SNIPS and xSID English rows; "1 am tonight" can)
_DAY_PART = re.compile(r"\s*(?:in the\s+|this\s+)?(morning|afternoon|evening)\b", re.I)
_NOT_IN = {"a": ("afternoon", "evening"), "p": ("morning",)}


def form_problem(text: str, max_sentences: int = 2) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``text`` does not have the form of a user's
    request, else None. English only: the cues are English words."""
    text = text.translate(_QUOTES).strip()
    if not text:
        return None
    match = _MARKUP.search(text)
    if match:
        return "markup", f"list or markup residue {match.group(0).strip()!r}"
    match = _RUN_ON_LIST.search(text)
    if match:
        return "run_on_list", "several numbered items in one row"
    if _ASIDE.match(text):
        return "aside", "the whole row is in brackets"
    match = _LINK.search(text)
    if match:
        return "link", f"a web address ({match.group(0)!r})"
    body = _GREETING.sub("", text)
    match = _ADVICE.match(body)
    if match:
        return "advice", f"starts like advice or narration ({match.group(0).strip()!r})"
    match = _NARRATION.match(body) or _TO_THE_USER.match(body)
    if match:
        return "narration", f"not addressed as a request ({match.group(0).strip()!r})"
    match = _TASK_WORDS.search(text)
    if match:
        return "task_text", f"talks about the task ({match.group(0).strip()!r})"
    match = _DOUBLED_PARTICLE.search(text)
    if match:
        return "doubled_particle", f"'{match.group(1)}' twice ({match.group(0).strip()!r})"
    said: list[str] = _WORD.findall(text)
    words = [w for w in (w.lower() for w in said) if len(w) >= 4 and w not in _COMMON]
    if len(words) > len(set(words)) + 1:  # a word three times needs two repeats
        repeated = [w for w in set(words) if words.count(w) >= 3]
        if repeated:
            most = sorted(repeated)[0]
            return "repetitive", f"{most!r} {words.count(most)} times"
    found = _said_twice(said)
    if found:
        return "repeated_word", f"{found!r} twice in a short request"
    if text.count('"') % 2:
        return "quote", "an unclosed quotation mark"
    match = _DEGREE_AS_THING.match(body)
    if match:
        return "degree", f"a degree where a thing belongs ({match.group(0).strip()!r})"
    clock = _impossible_time(text)
    if clock:
        return "clock", f"a time of day that cannot be ({clock!r})"
    if text.rstrip('"\' )').endswith("?") and not {w.lower() for w in said} & _ASKING:
        return "question_mark", "a command that ends in a question mark"
    first = _WORD.match(body)
    if first:
        head = first.group(0).lower()
        if head.endswith("ing") and len(head) >= 6 and head not in _NOT_GERUNDS:
            return "narration", f"starts with a gerund ({first.group(0)!r})"
    # a sentence counts when it has three words ("P. J. Proby" is one)
    sentences = [s for s in _SENTENCE.split(text) if len(_WORD.findall(s)) >= 3]
    if len(sentences) > max_sentences:
        return "several_sentences", f"{len(sentences)} sentences"
    return None


def _impossible_time(text: str) -> str | None:
    """The first time of day in ``text`` that no clock shows: a number other than 12 said
    as noon or midnight, 13 or more hours before am/pm, an hour past 24 or minutes past 59
    ("7:75"), or pm in the morning and am in the afternoon or evening ("7pm morning").
    Hour 0 before am/pm passes: some write "00:30 am" (SNIPS has 15 such rows)."""
    if not _DIGIT.search(text):  # most requests name no time: one quick scan
        return None
    if ":" not in text and not _TIME_PART.search(text):  # numbers, but none is a time
        return None
    for match in _CLOCK.finditer(text):
        hour, minutes = int(match["h"]), match["m"]
        if minutes is None and not (match["day"] or match["half"]):
            continue  # a bare number: a count, not a time
        if (minutes is not None and int(minutes) > 59) or hour > 24 or (
                match["day"] and (hour != 12 or int(minutes or 0))) or (
                match["half"] and hour > 12):
            return match.group(0).strip()
        if match["half"]:
            part = _DAY_PART.match(text, match.end())
            if part and part[1].lower() in _NOT_IN[match["half"].lower()]:
                return text[match.start():part.end()].strip()
    return None


def _said_twice(words: list[str]) -> str | None:
    """A lower-case word (four letters or more, or "please") that a short text (its
    ``words``) says twice; capitalised words (names, titles) and a repeated first word do
    not count."""
    if len(words) > _TWICE_MAX_WORDS:
        return None
    seen: set[str] = set()
    for i, word in enumerate(words):
        low = word.lower()
        if not (low == "please" or (len(low) >= 4 and low not in _COMMON)):
            continue
        if i and word != low:  # a name or a title
            continue
        if low in seen:
            return low
        if i or low == "please":  # a first word said again may be a verb and a noun
            seen.add(low)
    return None


def plain_words(text: str) -> set[str]:
    """The lower-cased words of ``text`` that are not part of a name or a title: the first
    word, and every word after it that is written in lower case."""
    words: list[str] = _WORD.findall(text.translate(_QUOTES))
    return {w.lower() for i, w in enumerate(words) if i == 0 or w[:1].islower()}


def says_your(seeds: Iterable[str]) -> bool | None:
    """Whether English ``seeds`` speak of the listener's things ("your"); None for fewer
    than ten seeds, too few to tell a register by."""
    texts = list(seeds)
    if len(texts) < _REGISTER_MIN_SEEDS:
        return None
    return any(plain_words(t) & _YOUR for t in texts)


class FormFilter(Rule):
    """Drops English candidates shaped like markup, headings, advice or narration, and,
    when the recipe's seeds never say "your", those that do.

    ``seeds``: every seed example of the recipe (English ones are read).
    """

    name = "form"

    def __init__(self, max_sentences: int = 2, seeds: Iterable[str] = ()) -> None:
        super().__init__()
        self.max_sentences = max_sentences
        self.no_your = says_your(seeds) is False

    def check(self, example: Example) -> Verdict:
        if not (example.language or "en").lower().startswith("en"):
            return KEEP
        found = form_problem(example.text, self.max_sentences)
        if found is None and self.no_your and plain_words(example.text) & _YOUR:
            found = ("your", "says 'your', which no seed example does")
        if found is None:
            return KEEP
        return Verdict(False, f"form:{found[0]}", found[1])

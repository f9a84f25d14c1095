"""Text normalisation and tokenisation shared by the quality rules.

Everything here works on any script: words are runs of letters or digits, and
scripts written without spaces (Chinese, Japanese, Thai ...) count each
character as a word, so ROUGE-L and MinHash behave the same in every language.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

__all__ = ["AsciiFolded", "encode_tokens", "normalize", "normalize_many", "word_tokens"]

_NON_WORD = re.compile(r"\W+", re.UNICODE)
_NON_WORD_LINE = re.compile(r"[^\w\n]+", re.UNICODE)
_ASCII_PUNCT = str.maketrans({c: " " for c in map(chr, range(128))
                              if c != "\n" and not (c.isalnum() or c == "_")})
# Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar: no spaces between words
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0002fa1f"
)
_TOKEN = re.compile(rf"[{_UNSPACED}]|[^\W_{_UNSPACED}]+", re.UNICODE)


class AsciiFolded:
    """A case-insensitive pattern, searched faster in ASCII text: there the text is
    lower-cased and searched without ``re.I`` (about twice as fast for long lists of
    alternatives; for ASCII text and a pattern without upper-case letters, the same
    answer). A match, and any search in other text, comes from the pattern itself.

    >>> AsciiFolded(re.compile(r"\\bas an ai\\b", re.I)).search("As an AI, I")[0]
    'As an AI'
    """

    def __init__(self, pattern: re.Pattern[str]):
        if not pattern.flags & re.I:
            raise ValueError("the pattern is not case-insensitive (re.I)")
        if re.search(r"[A-Z]", re.sub(r"\\.", "", pattern.pattern)):  # escapes aside
            raise ValueError("the pattern has upper-case letters: lower-cased text misses them")
        self.pattern = pattern
        self._folded = re.compile(pattern.pattern, pattern.flags & ~re.I)

    def search(self, text: str) -> re.Match[str] | None:
        if text.isascii() and self._folded.search(text.lower()) is None:
            return None
        return self.pattern.search(text)


def normalize(text: str) -> str:
    """Case-folded, accent-preserving, punctuation-free, single-spaced text.

    >>> normalize("  Turn ON the Lights! ")
    'turn on the lights'
    """
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalize_many(texts: Sequence[str]) -> list[str]:
    """``[normalize(t) for t in texts]`` in a few calls over the joined texts."""
    joined = "\n".join(t.replace("\n", " ") if "\n" in t else t for t in texts)
    if joined.isascii():  # NFKC and casefold reduce to lower(); punctuation to spaces
        lines = joined.lower().translate(_ASCII_PUNCT).split("\n")
        return [" ".join(line.split()) for line in lines]
    joined = _NON_WORD_LINE.sub(" ", unicodedata.normalize("NFKC", joined).casefold())
    return [line.strip() for line in joined.split("\n")]


def word_tokens(text: str) -> list[str]:
    """Case-folded words; each character of an unspaced script is a word of its own.

    >>> word_tokens("Play 周杰伦's songs, NOW!")
    ['play', '周', '杰', '伦', 's', 'songs', 'now']
    """
    return list(_word_tokens(text))


# several rules tokenize the same candidate, one after the other: a few recent texts are
# enough (8,192 held 4.5 MB of texts and tokens through a run and its export)
@functools.lru_cache(maxsize=64)
def _word_tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()))


def encode_tokens(tokens: list[str], vocab: dict[str, str]) -> str:
    """One character per token (shared ``vocab``), so string algorithms compare token lists.

    Two token lists encoded with the same ``vocab`` have a longest common
    subsequence of characters equal to their longest common subsequence of tokens.
    """
    out = []
    for token in tokens:
        code = vocab.get(token)
        if code is None:
            # private-use planes 15-16 hold 131,068 symbols, then the rest of the range
            index = len(vocab)
            code = chr(0xF0000 + index) if index < 0x20000 else chr(0x10000 + index - 0x20000)
            vocab[token] = code
        out.append(code)
    return "".join(out)

"""Meta-text: output that talks about the task instead of being an example of it.

Small models answer as an assistant ("I'm ready to help!"), refuse, announce
their list ("Here are five requests:"), leave placeholders ("[Author]"), repeat
the prompt's instructions, or just say the label's name. None of that is data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.quality.normalize import word_tokens
from textsynth.quality.pii import MASKS
from textsynth.schemas import Example

__all__ = ["MetaTextFilter", "instruction_lines"]

_ASSISTANT = re.compile(
    r"\b(as an ai|i'?m an ai|i am an ai|(ai|a) language model|i'?m (here|ready|happy|glad)"
    r" to (help|assist)|i('?m| am) (designed|programmed) to"
    r"|i can(not|'t) (help|assist|do|provide)"
    r"|i'?m sorry|i apologi[sz]e|how (can|may) i (help|assist)|let me know if|feel free to"
    r"|hope (this|that) helps|sure,? here|certainly[,!]|of course[,!] here|i('ll| will) help you"
    r"|you (can|could|might|may) (say|ask|use)|please provide|welcome to|your (voice )?assistant"
    r"|upgrade to the latest version)\b",
    re.I,
)
_META = re.compile(
    r"(^\s*(here('s| is| are)|below (is|are)|the following)\b)"
    r"|\b(for example|examples?:|sample (response|command|request)s?|requests?:|commands?:"
    r"|intent:|label:|output:|answer:|user:|assistant:|note:|translation:|response:"
    r"|voice assistant|chatbot|numbered list|one per line)",
    re.I,
)
_MASK_TAGS = "|".join(re.escape(m) for m in MASKS.values())
_PLACEHOLDER = re.compile(
    rf"(?!{_MASK_TAGS})(\[[^\]\n]{{1,40}}\]|\{{[^}}\n]{{1,40}}\}}|<[^>\n]{{1,40}}>)")
_CAMEL = re.compile(r"[a-z](?=[A-Z])")
_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)
_FILLER = {"intent", "label", "category", "the", "a", "an", "request", "command", "to"}


def instruction_lines(template_source: str, extra: Iterable[str] = ()) -> list[str]:
    """The literal lines of a prompt template (Jinja removed), plus ``extra`` texts."""
    text = _JINJA.sub(" ", template_source)
    lines = [line.strip() for line in text.splitlines()] + [e.strip() for e in extra]
    return [line for line in lines if len(word_tokens(line)) >= 3]


class MetaTextFilter(Rule):
    """Drops assistant-speak, announcements, placeholders, prompt echo and label echo."""

    name = "meta_text"

    def __init__(self, labels: Iterable[str] = (), instructions: Iterable[str] = (),
                 echo_threshold: float = 0.75):
        from textsynth.quality.rouge import RougePool

        super().__init__()
        self.label_names: dict[str, str] = {}
        for label in labels:
            for form in (label, label.replace("_", " "), _CAMEL.sub(r"\g<0> ", label)):
                self.label_names[" ".join(t for t in word_tokens(form) if t not in _FILLER)] = label
        self.instructions = RougePool(list(instructions))
        self.echo_threshold = echo_threshold

    def check(self, example: Example) -> Verdict:
        text = example.text
        for reason, pattern in (("assistant_speak", _ASSISTANT), ("meta_text", _META),
                                ("placeholder", _PLACEHOLDER)):
            match = pattern.search(text)
            if match:
                return Verdict(False, reason, match.group(0).strip())
        core = " ".join(t for t in word_tokens(text) if t not in _FILLER)
        if core in self.label_names:
            return Verdict(False, "label_echo", f"just the label '{self.label_names[core]}'")
        return self._prompt_echo(text)

    def _prompt_echo(self, text: str) -> Verdict:
        if len(word_tokens(text)) < 3:
            return KEEP
        # the share of the candidate's words that come, in order, from one prompt line
        found = self.instructions.most_contained(text)
        if found is not None and found[1] >= self.echo_threshold:
            return Verdict(False, "prompt_echo", self.instructions.texts[found[0]][:80])
        return KEEP

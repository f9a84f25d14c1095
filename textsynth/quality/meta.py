"""Meta-text: output that talks about the task instead of being an example of it.

Small models answer as an assistant ("I'm ready to help!"), refuse, announce
their list ("Here are five requests:"), leave placeholders ("[Author]"), repeat
the prompt's instructions, or just say the label's name. None of that is data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from textsynth.example import Example
from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.quality.normalize import AsciiFolded, word_tokens
from textsynth.quality.pii import MASKS

__all__ = ["MetaTextFilter", "instruction_lines"]

_ASSISTANT = AsciiFolded(re.compile(
    r"\b(as an ai|i'?m an ai|i am an ai|(ai|a) language model|i('?m| am) (here|ready|happy|glad"
    r"|excited|delighted|thrilled) to (help|assist|provide|offer|work)|i('?m| am) (designed"
    r"|programmed) to|i can(not|'t)? (help|assist|do that|provide|offer)"
    r"|i'?m sorry|i apologi[sz]e|how (can|may) i (help|assist)|let me know if|feel free to"
    r"|hope (this|that) helps|sure,? here|certainly[,!]|of course[,!] here|i('ll| will) help you"
    r"|you (can|could|might|may) (say|ask|use)|please provide|welcome to|your (voice )?assistant"
    r"|upgrade to the latest version|what can i (do|prepare|get) for you)\b",
    re.I,
))
_META = AsciiFolded(re.compile(
    r"(^\s*(here('s| is| are)|below (is|are)|the following)\b)|^\s*\w+( \w+)?:\s"
    r"|\b(for example|examples?:|sample (response|command|request)s?|requests?:|commands?:"
    r"|intent:|label:|output:|answer:|user:|assistant:|note:|translation:|response:"
    r"|voice assistant|chatbot|numbered list|one per line)",
    re.I,
))
_MASK_TAGS = "|".join(re.escape(m) for m in MASKS.values())
_PLACEHOLDER = re.compile(
    rf"(?!{_MASK_TAGS})(\[[^\]\n]{{1,40}}\]|\{{[^}}\n]{{1,40}}\}}|<[^>\n]{{1,40}}>)")
_CAMEL = re.compile(r"[a-z](?=[A-Z])")
_LIST_ITEM = re.compile(r"^(\d{1,3}[.)]|[-*•])\s")
_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)
_FILLER = {"intent", "label", "category", "the", "a", "an", "request", "command", "to"}


def instruction_lines(template_source: str, extra: Iterable[str] = ()) -> list[str]:
    """The instruction lines of a prompt: the template's literal lines (Jinja
    removed) and the lines of ``extra`` texts (rendered prompts), leaving out list
    items, which are examples to imitate rather than instructions to obey."""
    text = _JINJA.sub(" ", template_source)
    lines = [line.strip() for line in text.splitlines()]
    lines += [line.strip() for e in extra for line in e.splitlines()]
    return list(dict.fromkeys(line for line in lines
                              if len(word_tokens(line)) >= 3 and not _LIST_ITEM.match(line)))


class MetaTextFilter(Rule):
    """Drops assistant-speak, announcements, placeholders, prompt echo and label echo."""

    name = "meta_text"

    def __init__(self, labels: Iterable[str] = (), instructions: Iterable[str] = (),
                 echo_threshold: float = 0.75,
                 attributes: Mapping[str, Iterable[str]] | None = None):
        from textsynth.quality.rouge import RougePool

        super().__init__()
        self.label_names: dict[str, str] = {}
        for label in labels:
            for form in (label, label.replace("_", " "), _CAMEL.sub(r"\g<0> ", label)):
                self.label_names[" ".join(t for t in word_tokens(form) if t not in _FILLER)] = label
        self.instructions = RougePool(list(instructions))
        self.echo_threshold = echo_threshold
        # the recipe's `vary` attributes, as the model may repeat them ("style: casual")
        attributes = attributes or {}
        phrases = [rf"\b{re.escape(key)}\s*:" for key in attributes]
        phrases += [rf"\b{re.escape(v)}\b" for values in attributes.values() for v in values
                    if len(v.split()) >= 2]
        self._attributes = re.compile("|".join(phrases), re.I) if phrases else None

    def check(self, example: Example) -> Verdict:
        text = example.text
        for reason, pattern in (("assistant_speak", _ASSISTANT), ("meta_text", _META),
                                ("placeholder", _PLACEHOLDER)):
            match = pattern.search(text)
            if match:
                return Verdict(False, reason, match.group(0).strip())
        if self._attributes is not None:
            match = self._attributes.search(text)
            if match:
                return Verdict(False, "prompt_echo", f"repeats the attribute {match.group(0)!r}")
        words = [t for t in word_tokens(text) if t not in _FILLER]
        # the label's name, or the built-in template's format example for a label without
        # a description or seeds ("1. Please add to playlist."), copied
        for core in (" ".join(words), " ".join(t for t in words if t != "please")):
            if core in self.label_names:
                return Verdict(False, "label_echo",
                               f"just the label '{self.label_names[core]}'")
        return self._prompt_echo(text)

    def _prompt_echo(self, text: str) -> Verdict:
        if len(word_tokens(text)) < 3:
            return KEEP
        # most of the candidate comes from one prompt line, in order
        found = self.instructions.most_contained(text)
        # (the detail never quotes the line: it may be a seed example)
        if found is not None and found[1] >= self.echo_threshold:
            return Verdict(False, "prompt_echo", f"{found[1]:.0%} of it is a prompt line")
        # or it carries most of a longer instruction line ("Write 5 different requests to")
        match = self.instructions.covering(text, min_tokens=5, recall=self.echo_threshold)
        if match is not None:
            return Verdict(False, "prompt_echo", "it repeats most of a prompt line")
        return KEEP

"""Label consistency: a judge classifies each candidate among all labels; only
candidates whose predicted label is the one they were generated for are kept.

Two judges: a language model (the generation backend, or a separate one from
``quality.judge``) answering a multiple-choice prompt, and an embedding judge
that picks the label whose name and description are closest in meaning
(all-MiniLM-L6-v2, offline; cheap and steady where a small model guesses).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from textsynth.backends.base import Request
from textsynth.errors import TextsynthError
from textsynth.example import Example
from textsynth.labels import readable_label
from textsynth.quality.base import KEEP, Rule, Verdict

if TYPE_CHECKING:
    from textsynth.backends.base import Backend
    from textsynth.quality.semantic import Embedder
    from textsynth.templates import PromptTemplate

__all__ = ["EmbeddingJudge", "Judge", "LabelConsistency", "ModelJudge", "readable_label"]

class Judge(ABC):
    """Predicts one of ``labels`` for each text (None: cannot tell)."""

    def __init__(self, labels: Mapping[str, str]):
        self.labels = dict(labels)  # label -> description

    @abstractmethod
    async def classify(self, texts: Sequence[str]) -> list[str | None]:
        """One predicted label (or None) per text."""


class EmbeddingJudge(Judge):
    """Nearest label by cosine between the text and ``"<label name>: <description>"``.

    ``min_similarity`` turns off-topic texts (far from every label) into None.
    """

    def __init__(self, labels: Mapping[str, str], embedder: Embedder | None = None,
                 min_similarity: float = 0.0):
        from textsynth.quality.semantic import Embedder

        super().__init__(labels)
        self.embedder = embedder or Embedder()
        self.min_similarity = min_similarity
        self._prototypes: Any = None

    async def classify(self, texts: Sequence[str]) -> list[str | None]:
        names = list(self.labels)
        if self._prototypes is None:
            self._prototypes = self.embedder.encode(
                [f"{readable_label(n)}: {d}" if d else readable_label(n)
                 for n, d in self.labels.items()])
        sims = self.embedder.encode(texts) @ self._prototypes.T
        out: list[str | None] = []
        for row in sims:
            best = int(row.argmax())
            out.append(names[best] if row[best] >= self.min_similarity else None)
        return out


class ModelJudge(Judge):
    """Asks a language model which label fits, as a numbered multiple choice (greedy)."""

    def __init__(self, labels: Mapping[str, str], backend: Backend,
                 template: PromptTemplate | None = None, max_tokens: int = 8):
        from textsynth.templates import PromptTemplate

        super().__init__(labels)
        self.backend = backend
        self.template = template or PromptTemplate.load("judge_label")
        self.max_tokens = max_tokens

    def request(self, text: str) -> Request:
        options = [(readable_label(n), d) for n, d in self.labels.items()]
        return Request(self.template.render_messages(text=text, options=options),
                       temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, seed=0,
                       metadata={"purpose": "judge"})

    async def classify(self, texts: Sequence[str]) -> list[str | None]:
        requests = [self.request(t) for t in texts]
        size = max(1, self.backend.batch_size)
        answers: list[str] = []
        for start in range(0, len(requests), size):
            batch = requests[start:start + size]
            completions = await self.backend.generate(batch)
            answers.extend(c.text for c in completions)
        return [self.parse(a) for a in answers]

    def parse(self, answer: str) -> str | None:
        """The label an answer names: by its number, else by its name."""
        names = list(self.labels)
        number = re.search(r"\d+", answer)
        if number and 1 <= int(number.group(0)) <= len(names):
            return names[int(number.group(0)) - 1]
        lowered = answer.lower()
        for name in sorted(names, key=lambda n: -len(readable_label(n))):
            if readable_label(name) in lowered or name.lower() in lowered:
                return name
        return None


class LabelConsistency(Rule):
    """Keeps a candidate only if the judge puts it under the label it was made for."""

    name = "label_consistency"
    needs_prepare = True

    def __init__(self, judge: Judge):
        super().__init__()
        self.judge = judge
        self._predicted: dict[str, str | None] = {}

    async def prepare(self, examples: Sequence[Example]) -> None:
        texts = list(dict.fromkeys(e.text for e in examples if e.text not in self._predicted))
        if not texts:
            return
        if len(self._predicted) > 8192:
            self._predicted.clear()
        for text, label in zip(texts, await self.judge.classify(texts), strict=True):
            self._predicted[text] = label

    def check(self, example: Example) -> Verdict:
        if example.text not in self._predicted:
            raise TextsynthError("label consistency needs `await gate.prepare(candidates)` "
                                 "before `gate.check(candidate)`")
        predicted = self._predicted[example.text]
        if predicted is None:
            return Verdict(False, "judge_unclear", "the judge named no label")
        if predicted != example.label:
            return Verdict(False, "label_disagreement", f"the judge says '{predicted}'")
        return KEEP

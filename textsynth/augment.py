"""Translate and paraphrase: new labeled rows made from existing ones.

``translate`` turns each source row into each target language; ``paraphrase`` asks for
``n`` rewrites of each row of a small real seed set (classic data augmentation). Both
keep the label, carry entity values through ``[value](entity)`` markup and find them
again in the new text (:mod:`textsynth.spans`, exported as the typed ``entities`` column
a ``slots`` recipe has too), and record the source row (``source_id``, ``source_text``,
``source_language``) on every output row.

Both are a job source (:class:`AugmentJobs`) for the same engine as ``run``: one quota
per source row and target language, wanting one translation or ``n`` paraphrases. So
everything a recipe run does holds here too: every completion is stored before it is
read and rows are stored as they are accepted (an interrupted run resumes and sends
nothing twice); a candidate cut off by ``max_tokens`` is rejected; the quality gate takes
the recipe's ``quality:`` keys (``quality``), with the language rule on by default, so
every output row must be in its target language; a row whose answer is rejected is asked
again with a new seed (and a temperature of at least 0.7), up to ``max_attempts`` times;
the result says, per quota, why it stopped. Before the gate, each candidate must keep
the source row's entities, stay within a few times the source's length and differ from
the source. The output is exported like a recipe's (``dataset/``, parquet, JSONL, card).
"""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from textsynth import _loop
from textsynth.backends import Backend, available_backends
from textsynth.backends.base import Request
from textsynth.errors import DataError
from textsynth.example import Example
from textsynth.export.features import DatasetLayout
from textsynth.jobs import JobSource, Problem
from textsynth.languages import language_name
from textsynth.plan import Job, Quota
from textsynth.prompt import label_context
from textsynth.quality.normalize import normalize
from textsynth.recipe import Recipe, load_recipe
from textsynth.result import QuotaStats, RunResult
from textsynth.schemas import Parsed, UtteranceList, split_list
from textsynth.seeds import derive_seed
from textsynth.sources import LabeledSet, load_labeled
from textsynth.spans import ENTITIES, Span, entities_feature, markup, relocate, spans_from_row
from textsynth.templates import PromptTemplate

if TYPE_CHECKING:
    from textsynth.engine import ProgressHook
    from textsynth.quality import QualityGate

__all__ = ["AugmentJobs", "AugmentedRows", "paraphrase", "translate"]

Mode = Literal["translate", "paraphrase"]
_RETRY_TEMPERATURE = 0.7
MAX_LENGTH_RATIO = 3.0  # an output this many times longer than its source (in characters)
_QUOTES = "\"'“”„«»"


class AugmentedRows(UtteranceList):
    """The rows of a translate (one text an answer) or paraphrase run (a list), with
    their entities (the typed column a ``slots`` recipe exports) and their lineage."""

    def __init__(self, mode: Mode):
        self.mode = mode

    def parse(self, text: str) -> list[Parsed]:
        if self.mode == "paraphrase":
            return super().parse(text)
        for line in split_list(text):
            head, sep, rest = line.partition(":")
            if sep and rest.strip() and len(head.split()) <= 2 and "[" not in head:
                line = rest.strip()  # "German: ..." or "Translation: ..."
            line = line.strip().strip(_QUOTES)
            if line:
                return [Parsed(line)]
        return [Parsed(text, error="no_text")]

    def dataset_features(self) -> dict[str, Any]:
        from textsynth.export.feature_types import Value

        return {ENTITIES: entities_feature(),
                **{name: Value("string")
                   for name in ("source_id", "source_text", "source_language")}}


@dataclass
class SourceRow:
    id: str
    text: str
    label: str
    language: str
    spans: list[Span]

    @property
    def marked(self) -> str:
        return markup(self.text, self.spans)


class AugmentJobs(JobSource):
    """The jobs of one translate or paraphrase run over a labeled source (see the module
    docstring): quota ``(label, target language, source row id)`` wants ``n`` rows."""

    def __init__(self, mode: Mode, source: str | Path | LabeledSet, out_dir: str | Path, *,
                 languages: Sequence[str] = (), n: int = 1, backend: Backend | None = None,
                 backend_type: str = "openvino", backend_options: dict[str, Any] | None = None,
                 source_language: str = "en", template: str | None = None,
                 quality: dict[str, Any] | None = None, splits: dict[str, float] | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 max_attempts: int = 3, seed: int = 0):
        if mode == "translate" and not languages:
            raise DataError("translate needs at least one target language")
        if n < 1 or max_attempts < 1:
            raise DataError("n and max_attempts must be at least 1")
        if isinstance(source, str | Path):
            _check_apart(Path(source), Path(out_dir), mode)
        self.mode = mode
        self.data = load_labeled(source)
        self.n = n if mode == "paraphrase" else 1
        self.max_attempts = max_attempts
        self.seed = seed
        self.temperature = temperature if temperature is not None else (
            0.2 if mode == "translate" else 0.9)
        self.max_tokens = max_tokens or (96 if mode == "translate" else 48 * self.n + 32)
        self.rows = {row.id: row for row in (self._source_row(r, source_language)
                                             for r in self.data.rows)}
        targets = list(dict.fromkeys(languages)) if mode == "translate" else None
        self.recipe = self._recipe(targets, backend, backend_type, backend_options, template,
                                   quality, splits, source_language, Path(out_dir))
        self.template = PromptTemplate.load(self.recipe.template, self.recipe.base_dir)
        note = self.recipe.language_advice()
        if note:  # the command line shows it before the run starts
            logging.getLogger("textsynth").warning("note: %s", note)
        self.schema = AugmentedRows(mode)
        self.multilingual = len(targets or []) > 1
        self._quotas = [Quota(row.label, lang, row.id) for row in self.rows.values()
                        for lang in (targets or [row.language])]

    @staticmethod
    def _source_row(row: dict[str, Any], default_language: str) -> SourceRow:
        text, spans = spans_from_row(row)
        lang = str(row.get("language") or default_language)
        return SourceRow(str(row["row_id"]), text, row["label"], lang, spans)

    def _recipe(self, targets: list[str] | None, backend: Backend | None, backend_type: str,
                backend_options: dict[str, Any] | None, template: str | None,
                quality: dict[str, Any] | None, splits: dict[str, float] | None,
                source_language: str, out_dir: Path) -> Recipe:
        """The recipe this command amounts to: what the store keeps and the card shows."""
        counts = Counter(r.label for r in self.rows.values())
        languages = targets or sorted({r.language for r in self.rows.values()})
        labels = [lab for lab in self.data.label_names if lab in counts] or sorted(counts)
        if backend is not None:
            name = backend.name if backend.name in available_backends() else "fake"
            backend_spec: dict[str, Any] = {"type": name}
        else:
            backend_spec = {"type": backend_type, "options": backend_options or {}}
        what = (f"translated into {', '.join(languages)}" if targets
                else f"paraphrased ({self.n} per row)")
        return load_recipe({  # a user template path is relative to the working folder
            "name": f"{Path(self.data.name).stem or 'data'}-{self.mode}",
            "description": f"Rows of {self.data.name} {what}.",
            "language": source_language, "languages": languages,
            "labels": {lab: {} for lab in labels},
            "per_label": max(1, max(counts.values(), default=1) * self.n * len(targets or [1])),
            "template": template or self.mode, "backend": backend_spec,
            # each output row answers one source row: rules that compare rows with each
            # other or judge the label (on by default for recipes) stay off unless asked
            "quality": {"language_id": True, "near_duplicates": False, "novelty": False,
                        "semantic": False, "classifier": False, **(quality or {})},
            "seed": self.seed,
            "export": {"dir": str(out_dir), **({"splits": splits} if splits else {})},
        })

    # -- the job source ------------------------------------------------------------
    @property
    def quotas(self) -> list[Quota]:
        return self._quotas

    def target(self, quota: Quota) -> int:
        return self.n

    def job(self, quota: Quota, index: int) -> Job:
        seed = derive_seed(self.seed, self.mode, quota.source, quota.language, index, bits=31)
        return Job(quota, index, seed, attributes={"mode": self.mode})

    def request(self, job: Job) -> Request:
        row = self.rows[job.quota.source]
        pool = self.accepted
        # the rows this job's own earlier attempts gave, as far as processed `lag` rounds
        # before (the same at any concurrency): not to be repeated
        cut = pool.count_before(job.quota, job.index - self.lag) if pool is not None else 0
        avoid = pool.texts(job.quota, list(range(cut))) if pool is not None and cut else []
        context = {
            **label_context(row.label, job.language),
            "text": row.marked, "plain_text": row.text,
            "source_language": row.language, "source_language_name": language_name(row.language),
            "slots": [s.entity for s in row.spans], "n": max(1, self.n - len(avoid)),
            "avoid": avoid, "mode": self.mode,
        }
        retry = job.index > 0
        return Request(
            messages=self.template.render_messages(**context),
            temperature=max(self.temperature, _RETRY_TEMPERATURE) if retry else self.temperature,
            top_p=0.95, max_tokens=self.max_tokens, seed=job.seed,
            metadata={"slot": job.quota.group, "index": job.index},
        )

    def expected_yield(self, stats: QuotaStats) -> float:
        # one job at a time per source row: a retry is sent only once an answer fell short
        return float(stats.target)

    def check(self, job: Job, parsed: Parsed) -> tuple[Parsed, Problem | None]:
        row = self.rows[job.quota.source]
        text, spans, missing = relocate(" ".join(parsed.text.split()), row.spans)
        out = Parsed(text, fields={ENTITIES: [s.to_dict() for s in spans], "source_id": row.id,
                                   "source_text": row.text, "source_language": row.language})
        if len(text) > MAX_LENGTH_RATIO * len(row.text) + 20:
            # a small model's favourite failure: the same words over and over
            return out, ("too_long_for_source", f"{len(text)} vs {len(row.text)} chars")
        if missing:
            return out, ("slot_lost", ",".join(missing))
        same = normalize(text) == normalize(row.text)
        if same and self.mode == "paraphrase":
            return out, ("same_as_source", "")
        if same and job.language != row.language:
            return out, ("untranslated", "")
        return out, None

    def build_backend(self) -> Backend:
        from textsynth.executors import backend_from_spec

        spec = self.recipe.backend  # a list of models or of endpoints, as for a run
        return backend_from_spec(spec.type, spec.options)

    @property
    def layout(self) -> DatasetLayout:
        return DatasetLayout(tuple(self.recipe.labels), self.schema, self.recipe.export,
                             self.seed)

    def build_gate(self, backend: Backend) -> QualityGate:
        from textsynth.quality import quality_gate
        from textsynth.quality.meta import instruction_lines

        recipe = self.recipe
        gate = quality_gate(recipe.quality, recipe.labels, recipe.all_languages, backend,
                            instructions=instruction_lines(self.template.source,
                                                           [recipe.description]))
        if self.mode == "paraphrase":  # a paraphrase must not repeat any seed row
            for row in self.rows.values():
                gate.accept(Example(row.text, row.label, language=row.language))
        return gate

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "source": self.data.name, "command": self.command()}

    def command(self) -> str:
        """The ``textsynth`` command line that makes this run again (no backend secrets)."""
        recipe = self.recipe
        args = ["textsynth", self.mode, self.data.name]
        args += (["--to", ",".join(recipe.all_languages)] if self.mode == "translate"
                 else ["-n", str(self.n)])
        args += ["--source-language", recipe.language, "--max-attempts", str(self.max_attempts),
                 "--seed", str(self.seed)]
        if recipe.template != self.mode:
            args += ["--template", recipe.template]
        args += ["--backend", recipe.backend.type]
        model = recipe.backend.options.get("model")
        if isinstance(model, list):  # a mixture of models
            args += ["--option", f"model=[{', '.join(map(str, model))}]"]
        elif model:
            args += ["--model", str(model)]
        return " ".join(shlex.quote(a) for a in args)


def _check_apart(source: Path, out: Path, mode: str) -> None:
    """The output folder must not hold the source, nor lie inside it: the export would
    replace the very rows it reads (``translate out --out out`` replaced the run's
    dataset with its translation, and a second try read the translation back)."""
    src, dst = source.resolve(), out.resolve()
    # inside a source folder only its dataset (dataset/, data/) is read: output/ may go there
    inside = dst != src and dst.is_relative_to(src) and \
        dst.relative_to(src).parts[0] in ("dataset", "data")
    if src == dst or src.is_relative_to(dst) or inside:
        where = ("is the source" if src == dst else "holds the source" if src.is_relative_to(dst)
                 else "lies inside the source's dataset")
        raise DataError(f"the output folder {out} {where} ({source}): its export would "
                        f"replace the rows the {mode} reads; pass another --out")


def _run(jobs: AugmentJobs, backend: Backend | None, progress: ProgressHook | None,
         overwrite: bool) -> RunResult:
    from textsynth.pipeline import generate

    return _loop.run(generate(jobs, backend, progress, overwrite=overwrite))


def translate(source: str | Path | LabeledSet, languages: Sequence[str], out_dir: str | Path,
              *, backend: Backend | None = None, progress: ProgressHook | None = None,
              overwrite: bool = False, **options: Any) -> RunResult:
    """Translate every row of ``source`` into each of ``languages`` (ISO 639-1 codes).

    ``options`` are :class:`AugmentJobs`'s (``backend_type``, ``source_language``,
    ``quality``, ``max_attempts`` ...); ``overwrite`` and ``progress`` are as for
    :func:`~textsynth.pipeline.run_recipe`.

    >>> result = translate("seeds.jsonl", ["de", "it"], "output/seeds-de-it")  # doctest: +SKIP
    """
    jobs = AugmentJobs("translate", source, out_dir, languages=languages, backend=backend,
                       **options)
    return _run(jobs, backend, progress, overwrite)


def paraphrase(source: str | Path | LabeledSet, n: int, out_dir: str | Path, *,
               backend: Backend | None = None, progress: ProgressHook | None = None,
               overwrite: bool = False, **options: Any) -> RunResult:
    """Write ``n`` paraphrases of every row of ``source``, keeping labels and slots.

    >>> result = paraphrase("seeds.jsonl", 5, "output/seeds-x5")  # doctest: +SKIP
    """
    jobs = AugmentJobs("paraphrase", source, out_dir, n=n, backend=backend, **options)
    return _run(jobs, backend, progress, overwrite)

"""Translate and paraphrase: new labeled rows made from existing ones.

``translate`` turns each source row into each target language; ``paraphrase`` asks for
``n`` rewrites of each row of a small real seed set (classic data augmentation). Both
keep the label, carry entity values through ``[value](entity)`` markup and find them
again in the new text (:mod:`textsynth.spans`, exported as the typed ``entities`` column
a ``slots`` recipe has too), and record the source row (``source_id``, ``source_text``,
``source_language``) on every output row.

The run works like a recipe run: every completion is written to the run store in the
output folder before it is read, so a second run sends nothing twice; candidates go
through the same quality gate as a recipe's (``quality`` takes the recipe's
``quality:`` keys), with the language rule on by default: every output row must be in
its target language. A row whose answer is rejected is asked again with a new seed
(and a temperature of at least 0.7), up to ``max_attempts`` times. The output is exported
like a recipe's (``dataset/``, parquet, JSONL, card).
"""

from __future__ import annotations

import asyncio
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from textsynth.backends import Backend, available_backends, create_backend
from textsynth.backends.base import Completion, Request, Usage
from textsynth.errors import DataError, GenerationError
from textsynth.languages import language_name
from textsynth.prompt import label_context
from textsynth.quality.normalize import normalize
from textsynth.recipe import Recipe, load_recipe
from textsynth.schemas import Example, UtteranceList, split_list
from textsynth.seeds import derive_seed
from textsynth.sources import LabeledSet, load_labeled
from textsynth.spans import ENTITIES, Span, entities_feature, markup, relocate, spans_from_row
from textsynth.store import Store
from textsynth.templates import PromptTemplate

__all__ = ["AugmentOutcome", "AugmentRun", "paraphrase", "translate"]

Mode = Literal["translate", "paraphrase"]
Progress = Callable[[int, int], None]
_RETRY_TEMPERATURE = 0.7
MAX_LENGTH_RATIO = 3.0  # an output this many times longer than its source (in characters)


class AugmentedRows(UtteranceList):
    """Rows made from source rows: their entities (the same typed column a ``slots``
    recipe exports) and their lineage."""

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


@dataclass
class _Task:
    """One source row towards one target: how many outputs it still needs."""

    row: SourceRow
    target: str
    want: int
    accepted: list[str] = field(default_factory=list)
    attempts: int = 0


@dataclass
class AugmentOutcome:
    """What a translate or paraphrase run produced."""

    out_dir: Path
    dataset: Any
    accepted: int
    rejected: Counter[str]
    sent: int
    cached: int
    missing: dict[str, int]  # source row id -> outputs still missing after every attempt


class AugmentRun:
    """One translate or paraphrase run over a labeled source (see the module docstring)."""

    def __init__(self, mode: Mode, source: str | Path | LabeledSet, out_dir: str | Path, *,
                 languages: Sequence[str] = (), n: int = 1, backend: Backend | None = None,
                 backend_type: str = "openvino", backend_options: dict[str, Any] | None = None,
                 source_language: str = "en", template: str | None = None,
                 quality: dict[str, Any] | None = None, splits: dict[str, float] | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 max_attempts: int = 3, seed: int = 0, progress: Progress | None = None,
                 overwrite: bool = False):
        if mode == "translate" and not languages:
            raise DataError("translate needs at least one target language")
        if n < 1 or max_attempts < 1:
            raise DataError("n and max_attempts must be at least 1")
        self.mode = mode
        self.data = load_labeled(source)
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite  # may replace files in out_dir that textsynth did not write
        self.n = n if mode == "paraphrase" else 1
        self.max_attempts = max_attempts
        self.seed = seed
        self.progress = progress
        self.temperature = temperature if temperature is not None else (
            0.2 if mode == "translate" else 0.9)
        self.max_tokens = max_tokens or (96 if mode == "translate" else 48 * self.n + 32)
        self.rows = [self._source_row(r, source_language) for r in self.data.rows]
        targets = list(dict.fromkeys(languages)) if mode == "translate" else None
        self.recipe = self._recipe(targets, backend, backend_type, backend_options, template,
                                   quality, splits, source_language)
        self.backend = backend or create_backend(self.recipe.backend.type,
                                                 self.recipe.backend.options)
        self._owns_backend = backend is None
        self.template = PromptTemplate.load(self.recipe.template, self.recipe.base_dir)
        self.tasks = [_Task(row, lang, self.n) for row in self.rows
                      for lang in (targets or [row.language])]
        self.sent = self.cached = 0
        self.usage = Usage()
        self.rejected: Counter[str] = Counter()

    # -- setup ---------------------------------------------------------------------
    def _source_row(self, row: dict[str, Any], default_language: str) -> SourceRow:
        text, spans = spans_from_row(row)
        lang = str(row.get("language") or default_language)
        return SourceRow(str(row["row_id"]), text, row["label"], lang, spans)

    def _recipe(self, targets: list[str] | None, backend: Backend | None, backend_type: str,
                backend_options: dict[str, Any] | None, template: str | None,
                quality: dict[str, Any] | None, splits: dict[str, float] | None,
                source_language: str) -> Recipe:
        counts = Counter(r.label for r in self.rows)
        languages = targets or sorted({r.language for r in self.rows})
        labels = [lab for lab in self.data.label_names if lab in counts] or sorted(counts)
        if backend is not None:
            name = backend.name if backend.name in available_backends() else "fake"
            backend_spec: dict[str, Any] = {"type": name}
        else:
            backend_spec = {"type": backend_type, "options": backend_options or {}}
        what = (f"translated into {', '.join(languages)}" if targets
                else f"paraphrased ({self.n} per row)")
        spec: dict[str, Any] = {
            "name": f"{Path(self.data.name).stem or 'data'}-{self.mode}",
            "description": f"Rows of {self.data.name} {what}.",
            "language": source_language, "languages": languages,
            "labels": {lab: {} for lab in labels},
            "per_label": max(1, max(counts.values()) * self.n * (len(targets or [1]))),
            "template": template or self.mode, "backend": backend_spec,
            # each output row answers one source row: rules that compare rows with each
            # other or judge the label (on by default for recipes) stay off unless asked
            "quality": {"language_id": True, "near_duplicates": False, "novelty": False,
                        "semantic": False, "classifier": False, **(quality or {})},
            "seed": self.seed,
            "export": {"dir": str(self.out_dir), **({"splits": splits} if splits else {})},
        }
        return load_recipe(spec)  # a user template path is relative to the working folder

    # -- requests ------------------------------------------------------------------
    def request_for(self, task: _Task) -> Request:
        row = task.row
        context = {
            **label_context(row.label, task.target),
            "text": row.marked, "plain_text": row.text,
            "source_language": row.language, "source_language_name": language_name(row.language),
            "slots": [s.entity for s in row.spans], "n": task.want - len(task.accepted),
            "avoid": list(task.accepted), "mode": self.mode,
        }
        retry = task.attempts > 0
        return Request(
            messages=self.template.render_messages(**context),
            temperature=max(self.temperature, _RETRY_TEMPERATURE) if retry else self.temperature,
            top_p=0.95, max_tokens=self.max_tokens,
            seed=derive_seed(self.seed, self.mode, row.id, task.target, task.attempts, bits=31),
            metadata={"slot": f"{row.label}/{task.target}", "index": task.attempts},
        )

    async def _complete(self, tasks: list[_Task]) -> list[tuple[str, Completion | Exception]]:
        """A completion (from the store, or sent and stored first) per task, in order."""
        store, backend = self._store, self.backend
        keyed = []
        for task in tasks:
            request = self.request_for(task)
            keyed.append((task, request, request.key(backend.name, backend.model_name)))
        results: dict[str, Completion | Exception] = {}
        todo = []
        for task, request, key in keyed:
            cached = store.get_completion(key)
            if cached is not None:
                results[key] = cached
                self.cached += 1
            elif key not in results:
                results[key] = GenerationError("not sent")
                todo.append((task, request, key))
        sem = asyncio.Semaphore(backend.max_concurrency)
        done = [len(results) - len(todo)]

        async def send(batch: list[tuple[_Task, Request, str]]) -> None:
            async with sem:
                try:
                    completions = await backend.generate([r for _, r, _ in batch])
                except GenerationError as exc:
                    completions = [exc] * len(batch)  # type: ignore[list-item]
            for (task, request, key), completion in zip(batch, completions, strict=True):
                if isinstance(completion, Completion):
                    store.put_completion(key, f"{task.row.label}/{task.target}", task.attempts,
                                         request, completion)
                    self.sent += 1
                results[key] = completion
            done[0] += len(batch)
            if self.progress is not None:
                self.progress(done[0], len(results))

        size = backend.batch_size
        outcomes = await asyncio.gather(*(send(todo[i:i + size])
                                          for i in range(0, len(todo), size)),
                                        return_exceptions=True)
        for failure in outcomes:  # every batch has finished: the store is consistent
            if isinstance(failure, BaseException):
                raise failure
        return [(key, results[key]) for _, _, key in keyed]

    # -- reading answers -----------------------------------------------------------
    def candidates(self, text: str) -> list[str]:
        """The texts in one answer: one translation, or a list of paraphrases."""
        if self.mode == "paraphrase":
            return [p.text for p in UtteranceList().parse(text) if not p.error]
        for line in split_list(text):
            head, sep, rest = line.partition(":")
            if sep and rest.strip() and len(head.split()) <= 2 and "[" not in head:
                line = rest.strip()  # "German: ..." or "Translation: ..."
            line = line.strip().strip("\"'“”„«»")
            if line:
                return [line]
        return []

    def _example(self, task: _Task, text: str, spans: list[Span], key: str,
                 completion: Completion, seed: int) -> Example:
        row = task.row
        return Example(
            text=text, label=row.label, language=task.target,
            fields={ENTITIES: [s.to_dict() for s in spans], "source_id": row.id,
                    "source_text": row.text, "source_language": row.language},
            template=self.template.name, template_sha=self.template.sha,
            model=completion.model or self.backend.model_name,
            attributes={"mode": self.mode}, seed=seed, request_id=key,
        )

    def _judge(self, task: _Task, candidate: str) -> tuple[str, list[Span], str | None]:
        text, spans, missing = relocate(" ".join(candidate.split()), task.row.spans)
        if len(text) > MAX_LENGTH_RATIO * len(task.row.text) + 20:
            # a small model's favourite failure: the same words over and over
            return text, spans, f"too_long_for_source:{len(text)} vs {len(task.row.text)} chars"
        if missing:
            return text, spans, f"slot_lost:{','.join(missing)}"
        same = normalize(text) == normalize(task.row.text)
        if same and self.mode == "paraphrase":
            return text, spans, "same_as_source"
        if same and task.target != task.row.language:
            return text, spans, "untranslated"
        return text, spans, None

    async def _process(self, task: _Task, key: str, completion: Completion | Exception
                       ) -> None:
        task.attempts += 1
        row = task.row
        if not isinstance(completion, Completion):
            self._reject(task, "", "generation_failed", str(completion), key)
            return
        found = [c for t in completion.texts for c in self.candidates(t)]
        if not found:
            self._reject(task, completion.text, "parse:no_text", "", key)
        seed = derive_seed(self.seed, self.mode, row.id, task.target, task.attempts - 1,
                           bits=31)
        judged = []
        for candidate in found:
            text, spans, problem = self._judge(task, candidate)
            judged.append((self._example(task, text, spans, key, completion, seed), problem))
        if self.gate.needs_prepare:  # model-backed rules judge the whole answer at once
            await self.gate.prepare([ex for ex, problem in judged if problem is None])
        for example, problem in judged:
            if len(task.accepted) >= task.want:
                return
            if problem:
                self._reject(task, example.text, problem.split(":")[0], problem, key)
                continue
            verdict = self.gate.check(example)
            for label, text in self.gate.withdrawals():
                self._withdraw(label, text, example)
            if not verdict.keep:
                self._reject(task, example.text, verdict.reason, verdict.detail, key)
                continue
            self.gate.accept(example)
            task.accepted.append(example.text)
            self._examples.append(example)

    def _withdraw(self, label: str, text: str, newcomer: Example) -> None:
        """Take back an accepted row whose text turned up under another label."""
        for i, old in enumerate(self._examples):
            if old.label == label and old.text == text:
                del self._examples[i]
                owner = next(t for t in self.tasks if t.row.id == old.fields["source_id"]
                             and t.target == old.language)
                owner.accepted.remove(text)
                self._reject(owner, text, "cross_label_conflict",
                             f"also generated under '{newcomer.label}'", old.request_id)
                return

    def _reject(self, task: _Task, text: str, reason: str, detail: str, key: str) -> None:
        self.rejected[reason] += 1
        self._store.add_reject(task.row.label, task.target, text, reason, detail, key)

    # -- the run -------------------------------------------------------------------
    async def run(self) -> AugmentOutcome:
        """Generate, then export the dataset and its card into the output folder."""
        from textsynth.export.card import write_card
        from textsynth.export.dataset import export_dataset, output_names
        from textsynth.export.folder import check_folder
        from textsynth.quality import build_gate

        self.gate = build_gate(self.recipe, self.backend)
        self._examples: list[Example] = []
        check_folder(self.out_dir, output_names(self.recipe), self.overwrite)
        self._store = Store.in_dir(self.out_dir)
        try:
            self._store.reset_results()
            self._store.set_meta("recipe", self.recipe.model_dump(mode="json", by_alias=True))
            if self.mode == "paraphrase":  # a paraphrase must not repeat any seed row
                for row in self.rows:
                    self.gate.accept(Example(row.text, row.label, language=row.language))
            try:
                for _ in range(self.max_attempts):
                    pending = [t for t in self.tasks if len(t.accepted) < t.want]
                    if not pending:
                        break
                    answers = await self._complete(pending)
                    for task, (key, completion) in zip(pending, answers, strict=True):
                        await self._process(task, key, completion)
            finally:
                if self._owns_backend:
                    await self.backend.aclose()
            with self._store.transaction():
                for seq, example in enumerate(self._examples):
                    self._store.add_example(seq, example)
            summary = self._summary()
            self._store.set_meta("summary", summary)
            dataset = None  # nothing accepted: nothing to export
            if self._examples:
                dataset = export_dataset(self.recipe, self._store, self.out_dir,
                                         AugmentedRows(), overwrite=self.overwrite)
                write_card(self.recipe, dataset, summary, self.out_dir)
        finally:
            self._store.close()
        missing = {t.row.id: t.want - len(t.accepted) for t in self.tasks
                   if len(t.accepted) < t.want}
        return AugmentOutcome(self.out_dir, dataset, len(self._examples), self.rejected,
                              self.sent, self.cached, missing)

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
        if recipe.backend.options.get("model"):
            args += ["--model", str(recipe.backend.options["model"])]
        return " ".join(shlex.quote(a) for a in args)

    def _summary(self) -> dict[str, Any]:
        slots: dict[str, dict[str, Any]] = {}
        for task in self.tasks:
            entry = slots.setdefault(f"{task.row.label}/{task.target}", {
                "target": 0, "accepted": 0, "jobs": 0, "rejected": {}})
            entry["target"] += task.want
            entry["accepted"] += len(task.accepted)
            entry["jobs"] += task.attempts
        usage = self._store.usage()
        return {"mode": self.mode, "source": self.data.name, "command": self.command(),
                "slots": slots,
                "sent": self.sent, "cached": self.cached, "rejected": dict(self.rejected),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "model": self.backend.model_name, "backend": self.backend.name}


def translate(source: str | Path | LabeledSet, languages: Sequence[str], out_dir: str | Path,
              **options: Any) -> AugmentOutcome:
    """Translate every row of ``source`` into each of ``languages`` (ISO 639-1 codes).

    ``options`` are :class:`AugmentRun`'s (``backend``, ``source_language``, ``quality``,
    ``max_attempts`` ...).

    >>> translate("seeds.jsonl", ["de", "it"], "output/seeds-de-it")  # doctest: +SKIP
    """
    return asyncio.run(AugmentRun("translate", source, out_dir, languages=languages,
                                  **options).run())


def paraphrase(source: str | Path | LabeledSet, n: int, out_dir: str | Path,
               **options: Any) -> AugmentOutcome:
    """Write ``n`` paraphrases of every row of ``source``, keeping labels and slots.

    >>> paraphrase("seeds.jsonl", 5, "output/seeds-x5")  # doctest: +SKIP
    """
    return asyncio.run(AugmentRun("paraphrase", source, out_dir, n=n, **options).run())

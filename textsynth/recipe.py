"""Recipes: what to generate, how, and where to put it."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from textsynth.backends.spec import BackendSpec
from textsynth.errors import RecipeError
from textsynth.overrides import apply_overrides
from textsynth.quality.config import QualitySpec
from textsynth.recipe_file import parse_yaml, read_recipe_text
from textsynth.recipe_specs import (
    BudgetSpec,
    ExecutionSpec,
    ExportSpec,
    GenerationSpec,
    HubSpec,
    LabelSpec,
    Strict,
)
from textsynth.validation import describe, message

__all__ = [
    "BackendSpec",
    "BudgetSpec",
    "ExecutionSpec",
    "ExportSpec",
    "GenerationSpec",
    "HubSpec",
    "LabelSpec",
    "Recipe",
    "load_recipe",
]

# a license as the Hub's dataset cards name one: cc-by-4.0, apache-2.0, mit, other ...
_LICENSE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
# built-in templates that instruct a chat model: never a document to continue
_INSTRUCTIONS = frozenset({"slots", "paraphrase", "translate", "judge_label"})

MAX_PER_LABEL = 10_000_000
MAX_VARY_COMBINATIONS = 10_000


MAX_LABEL_NAME = 200  # characters: a name, not a description (and a column value)


def _check_label_name(name: Any, index: int | None) -> None:
    """A label name is text or a whole number (``0``/``1`` labels); anything else YAML
    made of it is refused rather than written into prompts as ``['a', 'b']`` or ``None``."""
    where = f"label {index + 1}" if index is not None else "a label name"
    if isinstance(name, str):
        if len(name) > MAX_LABEL_NAME:
            raise ValueError(f"{where} is {len(name):,} characters long ({name[:24]!r}...); a "
                             f"label name is at most {MAX_LABEL_NAME} (a longer text goes in "
                             "its description)")
        return
    if isinstance(name, int) and not isinstance(name, bool):
        return
    if isinstance(name, bool):
        raise ValueError(f"{where} is {str(name).lower()}, not a name: YAML reads an "
                         "unquoted yes, no, on, off, true or false as true or false; "
                         "quote it ('on')")
    if name is None:
        raise ValueError(f"{where} is empty (null)")
    if isinstance(name, float):
        raise ValueError(f"{where} is the number {name!r}: quote it ('{name!r}') to use "
                         "it as a name")
    kind = ("a list" if isinstance(name, list | tuple) else
            "a mapping" if isinstance(name, dict) else type(name).__name__)
    raise ValueError(f"{where} is {kind}, not a name (a list of labels holds names; "
                     "a label's description and examples go under its name: "
                     "labels: {name: {description: ..., examples: [...]}})")


class Recipe(Strict):
    """A complete, validated description of one dataset.

    >>> Recipe(name="demo", labels={"greet": "Say hello"}, per_label=10)  # doctest: +SKIP
    """

    name: str = Field(min_length=1)
    description: str = ""
    language: str = "en"
    languages: list[str] | None = None
    license: str | None = None
    labels: dict[str, LabelSpec] = Field(min_length=1)
    per_label: int = Field(ge=1, le=MAX_PER_LABEL)
    template: str = "utterances"
    output_schema: str = Field("utterances", alias="schema")
    vary: dict[str, list[str]] = Field(default_factory=dict)
    slots: dict[str, list[str]] = Field(default_factory=dict)
    backend: BackendSpec = BackendSpec()
    generation: GenerationSpec = GenerationSpec()
    quality: QualitySpec = QualitySpec()
    export: ExportSpec = ExportSpec()
    budget: BudgetSpec = BudgetSpec()
    execution: ExecutionSpec = ExecutionSpec()
    seed: int = 0

    # where the recipe came from: relative template paths resolve against it
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _moved_options(cls, data: Any) -> Any:
        """The openai backend's ``reasks`` option, as it was once spelled, is accepted as
        ``generation.repair_turns`` (correction turns for any backend)."""
        backend: Any = data.get("backend") if isinstance(data, dict) else None
        options: Any = backend.get("options") if isinstance(backend, dict) else None
        if not isinstance(options, dict) or "reasks" not in options:
            return data
        generation = data.get("generation") or {}
        if not isinstance(generation, dict):
            return data  # the generation field reports what is wrong with it
        turns = options["reasks"]
        if generation.get("repair_turns", turns) != turns:
            raise ValueError("backend.options.reasks and generation.repair_turns disagree: "
                             "give only generation.repair_turns")
        return {**data, "backend": {**backend, "options": {
                    k: v for k, v in options.items() if k != "reasks"}},
                "generation": {**generation, "repair_turns": turns}}

    @field_validator("name")
    @classmethod
    def _one_line_name(cls, v: str) -> str:
        if "\n" in v or "\r" in v:  # the card's title and the output folder's name
            raise ValueError("a recipe's name is one line")
        return v

    @field_validator("license")
    @classmethod
    def _license_id(cls, v: str | None) -> str | None:
        if v is not None and not _LICENSE.fullmatch(v):  # the Hub reads an identifier
            raise ValueError(f"a license identifier such as cc-by-4.0, mit or other, not {v!r}")
        return v

    @field_validator("language", "languages", mode="before")
    @classmethod
    def _language_codes(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted no (Norwegian) as false: "the Norway problem"
        for code in v if isinstance(v, list) else [v]:
            if isinstance(code, bool):
                raise ValueError(f"{str(code).lower()} is not a language code: YAML reads an "
                                 "unquoted no, yes, on or off as true or false; quote it "
                                 "('no' for Norwegian)")
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if isinstance(v, list | dict):
            for i, name in enumerate(v):
                _check_label_name(name, i if isinstance(v, list) else None)
            counts = Counter(str(name) for name in v)
            twice = sorted(n for n, k in counts.items() if k > 1)
            if twice:  # a dict would keep one of them silently
                raise ValueError(f"label '{twice[0]}' is given twice")
        if isinstance(v, list):
            return {str(name): {} for name in v}
        if isinstance(v, dict):
            return {
                str(k): ({"description": d} if isinstance(d, str) else ({} if d is None else d))
                for k, d in v.items()
            }
        return v

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, LabelSpec]) -> dict[str, LabelSpec]:
        seen: dict[str, str] = {}
        for name in v:
            if not name.strip():
                raise ValueError("a label name is empty")
            key = _label_key(name)
            if key in seen:
                raise ValueError(f"labels '{seen[key]}' and '{name}' differ only by case or "
                                 "separators; they would be the same label in an export")
            seen[key] = name
        return v

    @field_validator("per_label", "seed", mode="before")
    @classmethod
    def _not_a_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):  # YAML `true` would otherwise count as 1
            raise ValueError(f"expected a whole number, got {str(v).lower()}")
        return v

    @field_validator("vary", "slots")
    @classmethod
    def _non_empty_lists(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"'{key}' needs at least one value")
            if not all(value.strip() for value in values):  # 'must mention the room ""'
                raise ValueError(f"'{key}' has a blank value")
        return v

    @field_validator("vary")
    @classmethod
    def _few_enough_combinations(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        combinations = math.prod(len(values) for values in v.values())
        if combinations > MAX_VARY_COMBINATIONS:  # the planner keeps an order per label
            raise ValueError(f"{combinations:,} combinations of attributes; at most "
                             f"{MAX_VARY_COMBINATIONS:,}")
        return v

    @model_validator(mode="after")
    def _style_template(self) -> Recipe:
        if self.generation.style != "continue":
            return self
        # the built-in instruction `utterances` has a continued-list form of its own;
        # another built-in instruction would be continued as a document, words and all
        if self.template == "utterances":
            self.template = "continue"
        elif self.template in _INSTRUCTIONS:
            raise ValueError(
                f"template '{self.template}' is an instruction for chat prompts; with "
                "generation.style: continue use template: continue (a list of the label's "
                "examples, slot values swapped in) or a template of your own")
        for name, spec in self.labels.items():  # a continued list holds a row a line
            broken = next((i for i, e in enumerate(spec.examples) if "\n" in e.strip()), None)
            if broken is not None:
                raise ValueError(f"labels.{name}.examples: example {broken + 1} holds a line "
                                 "break; a continued list shows one example a line")
        return self

    @model_validator(mode="after")
    def _check_label_slots(self) -> Recipe:
        for name, spec in self.labels.items():
            unknown = sorted(set(spec.slots or []) - set(self.slots))
            if unknown:
                raise ValueError(f"labels.{name}.slots: {', '.join(unknown)} not declared "
                                 "under slots")
        return self

    @model_validator(mode="after")
    def _check_backend_options(self) -> Recipe:
        from textsynth.backends import get_backend

        cls = get_backend(self.backend.type)
        urls = self.backend.options.get("base_url")
        if isinstance(urls, list) and not urls:
            raise ValueError("backend.options.base_url: give at least one URL")
        models = self.backend.options.get("model")
        if isinstance(models, list):
            if not models:
                raise ValueError("backend.options.model: give at least one model")
            seen = [m for i, m in enumerate(models) if m in models[:i]]
            if seen:
                raise ValueError(f"backend.options.model: '{seen[0]}' is named twice (a "
                                 "list of models mixes different models)")
        # a list of endpoints or of models: each one is a backend with these options
        # (see executors), so each entry is checked in place of its list
        lists = {key: values for key, values in (("base_url", urls), ("model", models))
                 if isinstance(values, list)}
        single = {**self.backend.options, **{key: values[0] for key, values in lists.items()}}
        entries = [{key: value} for key, values in lists.items() for value in values]
        for entry in entries or [{}]:
            try:
                cls.Options(**{**single, **entry})
            except ValidationError as exc:
                raise ValueError(message(exc, "backend.options")) from exc
        return self

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    @property
    def output_dir(self) -> Path:
        return Path(self.export.dir) if self.export.dir else Path("output") / _slug(self.name)

    @property
    def max_attempts(self) -> int:
        """The most requests sent for one label (and language) before giving up on it."""
        if self.generation.max_attempts:
            return self.generation.max_attempts
        per_request = self.generation.examples_per_request * self.generation.n
        return 10 * math.ceil(self.per_label / per_request) + 10

    @property
    def all_languages(self) -> list[str]:
        return list(self.languages) if self.languages else [self.language]

    def advice(self) -> list[str]:
        """What a user should know before paying for a run of this recipe (notes, not
        errors: the recipe is valid)."""
        notes = []
        bare = [name for name, spec in self.labels.items()
                if not spec.description.strip() and not spec.examples]
        if bare:
            shown = ", ".join(bare[:3]) + (f" and {len(bare) - 3} more" if len(bare) > 3 else "")
            notes.append(
                f"{len(bare)} of {len(self.labels)} labels have neither a description nor "
                f"examples ({shown}): the model has only the name to go on. A one-line "
                "description per label, in the user's words, helps most (docs/quality.md, "
                "\"Label names only\").")
        note = self.language_advice()
        if note:
            notes.append(note)
        return notes

    def language_advice(self) -> str | None:
        """A note when the embedded English model is to write another language (``run``
        with ``languages``, or ``translate``): most of what it writes there is not usable."""
        from textsynth.backends.transformers import DEFAULT_MODEL
        from textsynth.languages import base_code, language_name

        others = [language_name(c) for c in self.all_languages if base_code(c) != "en"]
        if not others or self.backend.type not in ("openvino", "transformers", "vllm") \
                or self.backend.options.get("model", DEFAULT_MODEL) != DEFAULT_MODEL:
            return None
        named = " and ".join([", ".join(others[:-1]), others[-1]] if others[:-1] else others)
        return (f"the embedded SmolLM2-135M writes mostly English, and its {named} will be "
                "poor (its German was mostly not German: docs/quality.md, \"A new "
                "language\"); read the rows, or use a larger model (--model) or a hosted one "
                "(--base-url)")

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with overrides applied and validated (``None`` values are ignored).

        Keys: ``set`` (fields by dotted path), ``out``, ``per_label``, ``seed``,
        ``backend``, ``model`` and any backend option; ``base_url`` alone means the
        ``openai`` backend (see :func:`textsynth.overrides.apply_overrides`).
        """
        # only what the recipe set, as it was read: a default stays a default (a rule only
        # on by default is skipped when its packages are missing; one asked for is not)
        data = apply_overrides(self.model_dump(by_alias=True, exclude_unset=True), changes)
        data["source"] = self.source
        return _validate(data, str(self.source) if self.source else None)


def _label_key(name: str) -> str:
    """``Turn_On``, ``turn-on`` and ``turn on`` are one label to a reader and to matching."""
    return re.sub(r"[\W_]+", "", name).casefold()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip().lower()) or "run"


def _validate(data: Any, file: str | None) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        loc, msg = describe(exc)
        raise RecipeError(msg, file=file, field=loc or None) from None


def load_recipe(source: str | Path | dict[str, Any]) -> Recipe:
    """Load and validate a recipe from a YAML file or a mapping.

    Errors raise :class:`RecipeError` naming the file, the field path and what was
    expected; nothing is loaded or sent before the recipe is valid. A file larger than
    ``MAX_RECIPE_BYTES``, not UTF-8, with a key given twice in one mapping, or whose
    aliases expand past ``MAX_RECIPE_NODES`` nodes or ``MAX_RECIPE_CHARS`` characters
    of text is refused.
    """
    if isinstance(source, dict):
        return _validate(source, None)
    path = Path(source)
    if not path.is_file():
        raise RecipeError("recipe file not found", file=str(path))
    data = parse_yaml(read_recipe_text(path), str(path))
    if not isinstance(data, dict):
        raise RecipeError("a recipe must be a YAML mapping", file=str(path))
    data["source"] = path.resolve()
    return _validate(data, str(path))

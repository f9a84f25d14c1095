"""Recipes: what to generate, how, and where to put it."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from textsynth.backends.spec import BackendSpec
from textsynth.errors import RecipeError
from textsynth.overrides import apply_overrides
from textsynth.quality.config import QualitySpec
from textsynth.quality.rejects import REJECTS_SPLIT
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

ExportFormat = Literal["arrow", "parquet", "jsonl", "csv", "rasa"]

# a split name becomes file names (train.jsonl, data/train-00000-of-00001.parquet): the
# Hugging Face rule for split names, in ASCII, so that it is a safe file name everywhere
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64})*")
_RESERVED_SPLITS = {REJECTS_SPLIT: "it names the rejected rows (export.save_rejects)"}
_DEVICE_NAMES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                 *(f"lpt{i}" for i in range(10))}


def _check_split_name(name: str) -> None:
    if not _SPLIT_NAME.fullmatch(name) or len(name) > 64:
        raise ValueError(f"split name {name!r} is not allowed: it becomes a file name, so use "
                         "at most 64 letters, digits and '_' (a '.' only between them)")
    if name.lower() in _RESERVED_SPLITS:
        raise ValueError(f"split name {name!r} is reserved: {_RESERVED_SPLITS[name.lower()]}")
    if name.split(".")[0].lower() in _DEVICE_NAMES:
        raise ValueError(f"split name {name!r} is reserved: it names a device on Windows")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LabelSpec(_Strict):
    """One label: what it means, and optional real seed examples for few-shot prompts."""

    description: str = ""
    examples: list[str] = []
    slots: list[str] | None = Field(None, description="slot types this label uses (default: all)")


class GenerationSpec(_Strict):
    temperature: float = Field(0.9, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(160, ge=1)
    examples_per_request: int = Field(5, ge=1, le=100)
    n: int = Field(1, ge=1, le=16)
    batch_size: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1)
    fewshot: int = Field(3, ge=0)
    bootstrap: bool = Field(False, description=(
        "a label without seed examples is shown `fewshot` of its own accepted rows instead"))
    avoid: int = Field(8, ge=0, description="already-accepted examples shown as 'do not repeat'")
    max_attempts: int | None = Field(None, ge=1, description="requests per label at most")


class BudgetSpec(_Strict):
    """Stop cleanly (and resumably) once the run has used this much."""

    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)
    input_price: float = Field(0.0, ge=0, description="price per million prompt tokens")
    output_price: float = Field(0.0, ge=0, description="price per million completion tokens")


class ExecutionSpec(_Strict):
    """Where generation runs: in this process, or on a pool of Ray actors.

    With ``engine: ray`` each of ``replicas`` actors builds its own instance of the
    recipe's backend and Ray places it where ``num_cpus``/``num_gpus`` fit; this
    process keeps planning, quotas, the quality gate and the run store.
    """

    engine: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray cluster address (default: $RAY_ADDRESS, "
                                                  "else a local cluster)")
    replicas: int = Field(1, ge=1, le=4096)
    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per replica")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (fractions share one)")
    max_restarts: int = Field(3, ge=-1, description="restarts per replica (-1: no limit)")


class HubSpec(_Strict):
    repo_id: str
    private: bool = False
    revision: str | None = None


class ExportSpec(_Strict):
    dir: str | None = None
    splits: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
    formats: list[ExportFormat] = ["arrow", "parquet", "jsonl"]
    save_rejects: bool = False
    hub: HubSpec | None = None
    bio_tags: bool = Field(False, description="add whitespace tokens and BIO tags for entities")
    group_near_duplicates: bool = Field(
        False, description="keep near-duplicate texts in one split (no train/test leakage)")
    near_duplicate_threshold: float = Field(0.85, gt=0.0, le=1.0)
    rows_per_shard: int = Field(100_000, ge=1, description="rows per Parquet file")

    @field_validator("splits")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one split is needed")
        seen: dict[str, str] = {}
        for name in v:
            _check_split_name(name)
            other = seen.setdefault(name.lower(), name)
            if other != name:  # one file on a case-insensitive file system
                raise ValueError(f"split names {other!r} and {name!r} differ only by case")
        if any(r <= 0 for r in v.values()):
            raise ValueError("split ratios must be positive")
        if not math.isclose(sum(v.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"split ratios must add up to 1 (they add up to {sum(v.values()):g})")
        return v


MAX_PER_LABEL = 10_000_000
MAX_VARY_COMBINATIONS = 10_000


class Recipe(_Strict):
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
    vary: dict[str, list[str]] = {}
    slots: dict[str, list[str]] = {}
    backend: BackendSpec = BackendSpec()
    generation: GenerationSpec = GenerationSpec()
    quality: QualitySpec = QualitySpec()
    export: ExportSpec = ExportSpec()
    budget: BudgetSpec = BudgetSpec()
    execution: ExecutionSpec = ExecutionSpec()
    seed: int = 0

    # where the recipe came from: relative template paths resolve against it
    source: Path | None = Field(None, exclude=True)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if isinstance(v, list | dict):
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
        # a list of endpoints: each one is a backend with these options (see executors)
        for url in urls if isinstance(urls, list) else [urls]:
            options = dict(self.backend.options)
            if url is not None:
                options["base_url"] = url
            try:
                cls.Options(**options)
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

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with overrides applied and validated (``None`` values are ignored).

        Keys: ``set`` (fields by dotted path), ``out``, ``per_label``, ``seed``,
        ``backend``, ``model`` and any backend option; ``base_url`` alone means the
        ``openai`` backend (see :func:`textsynth.overrides.apply_overrides`).
        """
        data = apply_overrides(self.model_dump(by_alias=True), changes)
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
    data = parse_yaml(_read_text(path), str(path))
    if not isinstance(data, dict):
        raise RecipeError("a recipe must be a YAML mapping", file=str(path))
    data["source"] = path.resolve()
    return _validate(data, str(path))


MAX_RECIPE_BYTES = 32 * 2**20
MAX_RECIPE_NODES = 2_000_000  # after alias expansion
MAX_RECIPE_CHARS = 64 * 2**20  # of scalar text, after alias expansion


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"cannot read the recipe: {exc.strerror or exc}", file=str(path)) \
            from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"the recipe is larger than {MAX_RECIPE_BYTES:,} bytes",
                          file=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RecipeError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", file=str(path),
                          field=f"line {line}") from None


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in


class _RecipeLoader(_BaseLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML would keep the
    last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class says so
                continue
            if duplicate:
                raise RecipeError(f"duplicate key {key!r} (each key may appear once)",
                                  field=f"line {key_node.start_mark.line + 1}")
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Nodes and scalar characters ``node`` stands for once every alias is expanded;
    linear in the distinct nodes (an alias is the same node object as its anchor)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    if isinstance(node, yaml.ScalarNode):
        size = (1, len(node.value))
    else:
        children = (node.value if isinstance(node, yaml.SequenceNode)
                    else [n for pair in node.value for n in pair])
        nodes, chars = 1, 0
        for child in children:
            n, c = _expanded_size(child, memo)
            nodes, chars = nodes + n, chars + c
        size = (nodes, chars)
    memo[id(node)] = size
    return size


def parse_yaml(text: str, file: str | None = None) -> Any:
    """Parse one YAML document with the recipe limits (see :func:`load_recipe`)."""
    loader = _RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes, chars = _expanded_size(node, {})
        if nodes > MAX_RECIPE_NODES or chars > MAX_RECIPE_CHARS:
            raise RecipeError(f"aliases expand to {nodes:,} nodes and {chars:,} characters "
                              f"(at most {MAX_RECIPE_NODES:,} and {MAX_RECIPE_CHARS:,})",
                              file=file)
        return loader.construct_document(node)
    except RecipeError as exc:
        raise RecipeError(exc.detail, file=file, field=exc.field) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise RecipeError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=file,
                          field=where) from None
    except RecursionError:
        raise RecipeError("the YAML is nested too deeply", file=file) from None
    finally:
        loader.dispose()

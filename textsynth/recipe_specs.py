"""The sections of a recipe: labels, generation, budget, execution, export and Hub.

Each is a strict pydantic model (an unknown key is an error); :class:`~textsynth.recipe.Recipe`
puts them together. Split names become file names, so they are checked here.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from textsynth.quality.rejects import REJECTS_SPLIT

__all__ = ["BudgetSpec", "ExecutionSpec", "ExportFormat", "ExportSpec", "GenerationSpec",
           "HubSpec", "LabelSpec", "Strict", "repo_id_problem"]

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


class Strict(BaseModel):
    """A model that refuses unknown keys (and takes fields by name or alias)."""


    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LabelSpec(Strict):
    """One label: what it means, and optional real seed examples for few-shot prompts."""

    description: str = ""
    examples: list[str] = []
    counter_examples: list[str] = Field([], description=(
        "near misses that are not this label (the opposite request, a neighbouring device): "
        "the in-loop classifier drops a candidate closer to one of them than to every "
        "example of the label"))
    slots: list[str] | None = Field(None, description="slot types this label uses (default: all)")

    @field_validator("examples", "counter_examples")
    @classmethod
    def _not_blank(cls, v: list[str]) -> list[str]:
        for i, text in enumerate(v):
            if not text.strip():  # a list item "- " in the prompt, an empty seed row
                raise ValueError(f"example {i + 1} is blank")
        return v


class GenerationSpec(Strict):
    style: Literal["chat", "continue"] = Field("chat", description=(
        "chat: the prompt is an instruction sent as chat messages; continue: it is a list "
        "the model continues as a plain document (no chat template), one row per line"))
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
    repair_turns: int | None = Field(None, ge=0, le=5, description=(
        "correction turns for an answer that does not fit the output schema (default: the "
        "backend's: 2 for openai, 0 for the others)"))


class BudgetSpec(Strict):
    """Stop cleanly (and resumably) once the run has used this much."""

    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)
    input_price: float = Field(0.0, ge=0, description="price per million prompt tokens")
    output_price: float = Field(0.0, ge=0, description="price per million completion tokens")

    @model_validator(mode="after")
    def _priced(self) -> BudgetSpec:
        # without a price every token costs 0: a cost limit would never stop the run
        if self.max_cost is not None and not (self.input_price or self.output_price):
            raise ValueError("max_cost needs the prices it counts: input_price and "
                             "output_price (per million tokens); without them nothing costs "
                             "anything and the run is not limited")
        return self


class ExecutionSpec(Strict):
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


class HubSpec(Strict):
    repo_id: str
    private: bool = False
    revision: str | None = None

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, v: str) -> str:
        # checked before the run, not after it has paid for every row and tries to push
        problem = repo_id_problem(v)
        if problem:
            raise ValueError(f"'{v}' is not a repo id ('name' or 'namespace/name'): {problem}")
        return v


def repo_id_problem(repo_id: str) -> str | None:
    """Why the Hub refuses ``repo_id`` (its own check, in one line), or None."""
    try:
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils._validators import validate_repo_id
    except ImportError:  # the Hub client checks it when it pushes
        return None
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        return str(exc).splitlines()[0].split(" Use `repo_type`")[0]
    return None


class ExportSpec(Strict):
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

"""The recipe's ``quality:`` section: which rules run and how strict they are.

Rules that take a threshold accept a number (the threshold), ``true`` (the
default settings) or ``false`` (off)::

    quality:
      near_duplicates: 0.8       # MinHash Jaccard
      novelty: 0.7               # ROUGE-L F1, as in Self-Instruct
      semantic: false            # embedding cosine (needs textsynth[quality])
      language_id: true          # lingua (needs textsynth[quality])
      pii: mask                  # reject | mask | off
      label_consistency: embedding
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from textsynth.validation import message

__all__ = [
    "ClassifierSpec",
    "LabelConsistencySpec",
    "LanguageIdSpec",
    "NearDuplicateSpec",
    "QualitySpec",
    "RequestSpec",
    "SemanticSpec",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NearDuplicateSpec(_Strict):
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="estimated Jaccard similarity")
    num_perm: int = Field(64, ge=8, le=512)
    ngram: int = Field(4, ge=1, le=16, description="character n-gram size")


class SemanticSpec(_Strict):
    threshold: float = Field(0.9, gt=0.0, le=1.0, description="cosine similarity")
    model: str | None = Field(None, description="sentence-transformers model folder (a BERT "
                                                "encoder runs without torch); default: the "
                                                "bundled all-MiniLM-L6-v2")
    index: Literal["auto", "exact", "approximate"] = Field("auto", description=(
        "exact: every query compares every accepted row; approximate: an inverted file "
        "proposes 16 likely matches whose exact cosine decides, from 10,000 rows on "
        "(needs textsynth[scale]); auto: approximate from 200,000 rows when faiss is "
        "installed"))


class LanguageIdSpec(_Strict):
    min_ratio: float = Field(0.5, gt=0.0, le=1.0, description=(
        "drop when the expected language scores below this share of the top language"))
    min_words: int = Field(3, ge=1, description="shorter texts are not judged")


class LabelConsistencySpec(_Strict):
    judge: Literal["model", "embedding"] = "model"
    min_similarity: float = Field(0.0, ge=-1.0, le=1.0,
                                  description="embedding judge: closer to no label is unclear")
    template: str = "judge_label"


class ClassifierSpec(_Strict):
    min_confidence: float = Field(0.3, ge=0.0, le=1.0, description=(
        "probability the classifier must give a candidate's own label"))
    margin: float = Field(0.1, ge=0.0, le=1.0, description=(
        "how much more likely another label must be to drop the candidate"))
    min_similarity: float = Field(0.2, ge=-1.0, le=1.0, description=(
        "cosine with the closest label's name and description below which a candidate "
        "is off topic"))
    min_seed_similarity: float | None = Field(None, ge=-1.0, le=1.0, description=(
        "cosine with the closest seed example of its own label below which a candidate "
        "of a label with seeds is dropped (off by default; 0.45 is a strict setting)"))
    min_label_similarity: float | None = Field(None, ge=-1.0, le=1.0, description=(
        "cosine with its own label's name and description below which a candidate is "
        "dropped (off by default; for recipes without seed examples, whose labels have "
        "nothing else to hold candidates to)"))
    min_label_margin: float | None = Field(None, ge=-1.0, le=1.0, description=(
        "how much closer (cosine) a candidate must be to its own label's name and "
        "description than to any other label's (off by default)"))
    warmup: int = Field(5, ge=0, description=(
        "accepted rows per label before the run's own classifier takes over from the "
        "closest label description"))
    audit: int = Field(0, ge=0, le=10, description=(
        "rounds of the end-of-run audit (0: off): once every quota is full, a classifier "
        "cross-fitted over all accepted rows withdraws those it puts under another label, "
        "and the run tops the labels up again"))
    audit_confidence: float = Field(0.5, ge=0.0, le=1.0, description=(
        "audit: probability another label must get (from a model that did not see the "
        "row) to withdraw an accepted row"))
    audit_folds: int = Field(5, ge=2, le=20, description="audit: folds of the cross-fit")


class RequestSpec(_Strict):
    min_probability: float = Field(0.3, ge=0.0, le=1.0, description=(
        "probability of being a request below which a candidate is dropped"))


def _shorthand(value: Any, key: str = "threshold") -> Any:
    """``false``/``null`` -> off, ``true`` -> defaults, a number -> that threshold."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, int | float):
        return {key: value}
    return value


class QualitySpec(BaseModel):
    """Quality rules applied to every candidate during generation, cheapest first."""

    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(2, ge=0)
    max_words: int = Field(40, ge=1)
    min_chars: int = Field(3, ge=0)
    max_chars: int = Field(300, ge=1)
    allow: list[str] = Field([], description="regexes; a candidate must match one")
    deny: list[str] = Field([], description="regexes; a candidate matching any is dropped")
    assistant_speak: bool = Field(True, description=(
        "drop assistant-speak, refusals, announcements, placeholders, prompt and label echo"))
    form: bool = Field(True, description=(
        "drop English candidates shaped like markup, list residue, advice or narration"))
    pii: Literal["reject", "mask", "off"] = "reject"
    language_id: LanguageIdSpec | None = Field(default_factory=LanguageIdSpec)
    custom: list[str] = Field([], description="user checks as 'module:function'")
    seed_leak: float | None = Field(0.8, gt=0.0, le=1.0, description=(
        "ROUGE-L F1 with any seed at which a candidate counts as a copy"))
    exact_dedup: bool = True
    near_duplicates: NearDuplicateSpec | None = Field(default_factory=NearDuplicateSpec)
    novelty: float | None = Field(0.7, gt=0.0, le=1.0, description=(
        "ROUGE-L F1 with a seed or accepted example of the label at which to drop"))
    semantic: SemanticSpec | None = Field(default_factory=SemanticSpec)
    withdraw_conflicts: bool = Field(False, description=(
        "when a text turns up under a second label, withdraw the first one too"))
    label_consistency: LabelConsistencySpec | None = None
    classifier: ClassifierSpec | None = Field(default_factory=ClassifierSpec, description=(
        "a label classifier trained during the run on the accepted rows"))
    request: RequestSpec | None = Field(None, description=(
        "drop narration, chatter, questions to the user, meta-text and option lists"))
    judge: Any = Field(None, description="a separate backend for the model judge "
                                         "({type, options}); default: the generation backend")

    @model_validator(mode="after")
    def _bounds(self) -> QualitySpec:
        # crossed bounds reject every candidate: the run would spend all its attempts
        for low, high in (("min_words", "max_words"), ("min_chars", "max_chars")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) is above {high} "
                                 f"({getattr(self, high)}): no candidate could pass")
        return self

    @field_validator("near_duplicates", "semantic", mode="before")
    @classmethod
    def _threshold_shorthand(cls, v: Any) -> Any:
        return _shorthand(v)

    @field_validator("classifier", mode="before")
    @classmethod
    def _classifier_shorthand(cls, v: Any) -> Any:
        return _shorthand(v, "min_confidence")

    @field_validator("request", mode="before")
    @classmethod
    def _request_shorthand(cls, v: Any) -> Any:
        return _shorthand(v, "min_probability")

    @field_validator("language_id", mode="before")
    @classmethod
    def _language_shorthand(cls, v: Any) -> Any:
        return _shorthand(v, "min_ratio")

    @field_validator("seed_leak", "novelty", mode="before")
    @classmethod
    def _float_shorthand(cls, v: Any, info: ValidationInfo) -> Any:
        if v is False:
            return None
        if v is True:
            return {"seed_leak": 0.8, "novelty": 0.7}[str(info.field_name)]
        return v

    @field_validator("label_consistency", mode="before")
    @classmethod
    def _judge_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"judge": v}
        return _shorthand(v)

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_backend(cls, v: Any) -> Any:
        if v is None:
            return None
        from textsynth.backends import get_backend
        from textsynth.backends.spec import BackendSpec
        from textsynth.errors import RecipeError

        try:
            spec = BackendSpec.model_validate(v)
            get_backend(spec.type).Options(**spec.options)
        except ValidationError as exc:
            # the Options model's fields sit under "options"; the spec's are its own
            inner = exc.title != BackendSpec.__name__
            raise ValueError(message(exc, "options" if inner else "")) from None
        except RecipeError as exc:
            raise ValueError(exc.detail) from None
        return spec

"""One way to say what a pydantic ``ValidationError`` found: a field path and a message.

Recipes, backend options, quality settings and output schemas all validate with
pydantic; each turns the first error into :func:`describe` 's ``(field, message)``, so
every message has the same shape: ``backend.options.temperature: Input should be less
than or equal to 2 (got 5)``. A secret-looking field (``api_key``) never shows its value.

>>> from pydantic import BaseModel, Field
>>> class Options(BaseModel):
...     temperature: float = Field(ge=0)
>>> try:
...     Options(temperature=-1)
... except Exception as exc:
...     print(message(exc, prefix="backend.options"))
backend.options.temperature: Input should be greater than or equal to 0 (got -1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textsynth.redact import is_secret_name, redact_text

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["describe", "field_path", "message"]

_SHOWN = 80  # characters of a bad value the message repeats
# fields whose values carry secrets under names of their own (a header written in curl
# style, "X-Api-Key: ...", is a list or a string, not a mapping of names): never shown
_HOLDS_SECRETS = frozenset({"headers", "default_headers", "extra_headers", "query",
                            "default_query", "extra_query"})


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``("labels", "x", 0)`` as ``labels.x.0``, after ``prefix`` when one is given."""
    return ".".join(str(p) for p in (*([prefix] if prefix else []), *loc))


def describe(exc: ValidationError, prefix: str = "", *, show_input: bool = True
             ) -> tuple[str, str]:
    """The field path and message of the first error in ``exc``; with ``show_input``
    the message repeats the bad value (shortened, never a secret one)."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif show_input and "input" in err and err["type"] not in ("value_error", "assertion_error") \
            and not any(is_secret_name(str(p)) or str(p) in _HOLDS_SECRETS for p in loc):
        shown = repr(err["input"])
        shown = shown if len(shown) <= _SHOWN else shown[:_SHOWN - 3] + "..."
        msg = f"{msg} (got {redact_text(shown)})"
    return field_path(loc, prefix), msg


def message(exc: ValidationError, prefix: str = "", *, show_input: bool = True) -> str:
    """``field: message`` (or the message alone when the error has no field)."""
    where, msg = describe(exc, prefix, show_input=show_input)
    return f"{where}: {msg}" if where else msg

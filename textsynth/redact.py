"""Secrets never leave the process: one redaction rule for store, card, logs and errors.

Two things are masked:

* **what looks secret**: entries whose *name* says key, token, password, auth ...
  (``api_key``, ``Authorization``, ``X-Portkey-Auth``, ``Proxy-Pass``, ``api-key``,
  ``Helicone-Auth``; not ``max_tokens``), credentials in URLs (``user:password@``),
  secret query parameters (``?key=``, ``api_key=``, ``token=``, ``sig=``; not
  ``api-version=``) and strings shaped like well-known keys (``sk-...``, ``hf_...``);
* **what is known to be secret**: every value registered with :func:`add_secret`
  (the backend registers its API key, auth headers and URL credentials, and the
  environment's usual key variables are always known). These are masked wherever
  they appear, so a key that a server echoes back (in an error body, or as the
  ``model`` of a completion) is masked in messages, rejects and exported rows.

>>> add_secret("s3cr3t-value")
>>> redact_text("the server said: bad key s3cr3t-value")
'the server said: bad key <redacted>'
>>> redact({"api_key": "x", "max_tokens": 9, "base_url": "http://u:p@h/v1?api-version=1&key=k"})
{'api_key': '<redacted>', 'max_tokens': 9, 'base_url': 'http://h/v1?api-version=1&key=<redacted>'}
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["REDACTED", "RedactingFilter", "add_secret", "is_secret_name", "mask_known",
           "redact", "redact_text"]

REDACTED = "<redacted>"
#: environment variables whose values are secrets wherever they turn up
SECRET_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TEXTSYNTH_API_KEY",
              "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY")
# shorter values are placeholders ("EMPTY", which vLLM servers take, "test", "none"):
# masking them would garble ordinary text, a card's "test" split among it
_MIN_SECRET = 6

# name parts that make an entry secret (a part: split at - _ . space and camelCase)
_SECRET_PARTS = {"key", "apikey", "token", "secret", "password", "passwd", "pass", "passphrase",
                 "pwd", "auth", "authorization", "authentication", "cookie", "cookies",
                 "credential", "credentials", "sig", "signature", "bearer", "session"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/?#@\s]*@", re.I)
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s?;]+)=(?P<value>[^&#\s;\"'<>]*)")
_TOKEN_SHAPED = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})")
# an Authorization value, quoted or not, with or without its scheme
_AUTH_VALUE = re.compile(r"(?P<lead>\bauthorization[\"']?\s*[:=]\s*[\"']?"
                         r"(?:(?:basic|bearer|token)\s+)?)(?!<redacted>)[^\s\"',;]+", re.I)
# "Bearer <token>" in running text: only a token with a digit ("Bearer bonds" stays)
_BEARER = re.compile(r"\b(?P<lead>Bearer\s+)(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")

_known: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether an option, header or query parameter called ``name`` holds a secret.

    >>> [is_secret_name(n) for n in ("X-Helicone-Auth", "apiKey", "max_tokens", "api-version")]
    [True, True, False, False]
    """
    words = [w.lower() for w in re.split(r"[-_.\s]+", _CAMEL.sub("_", str(name))) if w]
    if not words:
        return False
    if any(w in _SECRET_PARTS or w.startswith("passw") for w in words):
        return True
    return "".join(words) in {"apikey", "accesstoken", "xapikey", "subscriptionkey"}


def _forms(value: str) -> set[str]:
    """The ways a server may echo ``value`` back: as it is, URL-encoded or decoded,
    base64-encoded (Basic auth, tokens passed on), JSON-escaped (``\\u00e9``) and, for
    text beyond ASCII, its UTF-8 bytes read as Latin-1 (a server that got the encoding
    wrong). Upper and lower case are matched when masking."""
    forms = {value, quote(value, safe=""), unquote(value)}
    raw = value.encode("utf-8", "surrogatepass")
    encoded = base64.b64encode(raw).decode("ascii")
    forms.update({encoded, encoded.rstrip("="), base64.urlsafe_b64encode(raw).decode("ascii")})
    if not value.isascii():
        forms.add(json.dumps(value)[1:-1])
        forms.add(raw.decode("latin-1"))
    return forms


def add_secret(*values: str | None) -> None:
    """Remember secret values (and the forms a server may echo them in) so that they are
    masked wherever they appear, in any case. Values shorter than 6 characters are
    ignored."""
    with _lock:
        for value in values:
            if not value or len(value) < _MIN_SECRET:
                continue
            _known.update(form for form in _forms(value) if len(form) >= _MIN_SECRET)


_cache: tuple[tuple[Any, ...], list[tuple[str, str]]] = ((), [])


def _known_now(refresh: bool = True) -> list[tuple[str, str]]:
    """The secrets to mask, longest first (no half-masked keys).

    ``refresh``: look at the environment again. The hot path (every answer, row and
    reject) skips that: the backend registers the key it uses, and every message,
    log line and card looks again.
    """
    global _cache
    if not refresh and _cache[0] and _cache[0][0] == len(_known):
        return _cache[1]
    env = tuple(os.environ.get(name, "") for name in SECRET_ENV)
    state = (len(_known), *env)
    if _cache[0] != state:
        with _lock:
            found = set(_known)
        for value in env:
            if len(value) >= _MIN_SECRET:
                found.update(form for form in _forms(value) if len(form) >= _MIN_SECRET)
        _cache = (state, [(v, v.lower()) for v in sorted(found, key=len, reverse=True)])
    return _cache[1]


def _mask(text: str, secrets: list[tuple[str, str]]) -> str:
    """``text`` with every one of ``secrets`` (each with its lower case) masked, in any
    case."""
    lowered = text.lower()
    for secret, lower in secrets:
        if lower in lowered:  # as it is, or echoed in upper or lower case
            text = re.sub(re.escape(secret), REDACTED, text, flags=re.I)
            lowered = text.lower()
    return text


def mask_known(text: str) -> str:
    """``text`` with every known secret value masked, and nothing else changed.

    For generated data (rows, completions): only what is certainly a secret is
    touched, so that ordinary text is never altered by a pattern.
    """
    if not text:
        return text
    return _mask(text, _known_now(refresh=False))


def _query(match: re.Match[str]) -> str:
    if not is_secret_name(unquote(match["name"])) or not match["value"] \
            or match["value"] == REDACTED:
        return match[0]
    return f"{match['lead']}{match['name']}={REDACTED}"


def redact_text(text: str) -> str:
    """``text`` (a message, a URL, a log line) with known secrets and secret-looking
    parts masked: URL credentials are dropped, secret query values, bearer tokens
    and key-shaped strings are replaced by ``<redacted>``."""
    text = _mask(str(text), _known_now())
    text = _URL_USERINFO.sub(lambda m: m["scheme"], text)
    text = _QUERY_PARAM.sub(_query, text)
    text = _AUTH_VALUE.sub(lambda m: m["lead"] + REDACTED, text)
    text = _BEARER.sub(lambda m: m["lead"] + REDACTED, text)
    return _TOKEN_SHAPED.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """``value`` (any JSON-like structure) with secrets replaced: strings under a secret
    name, and secrets inside every string (see :func:`redact_text`).

    Only a string is masked for its name: numbers under secret-looking names are token
    counts, and a mapping or list is looked into (``labels: {reset_password: {...}}``
    is a label, not a password).
    """
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(v, str) and v and is_secret_name(str(k))
                else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message (attach it to a handler or
    logger): logs never show a key, even one a server echoed back."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


#: attached to the loggers of modules that may log server answers or options
LOG_FILTER = RedactingFilter()

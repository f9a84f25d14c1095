"""JSON text for the hot path: what ``json.JSONEncoder(...).encode`` writes, with the C
encoder built once.

``JSONEncoder.encode`` builds a new C encoder (and a dict to detect cycles) on every
call, which costs about as much as encoding a request's messages; a run encodes a few
values for every request it sends (its key, its body, its stored row). The encoder
here is built once and writes the same text; it does not look for cycles (the values
are plain data: a cycle raises RecursionError instead of ValueError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any

__all__ = ["json_encoder", "to_json", "to_sorted_json", "valid_text"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate in its strings (``"\\ud83d"`` in JSON
    that a model or a file wrote alone, half an emoji) replaced by U+FFFD: such a
    string cannot be encoded as UTF-8, so it could not be stored, exported or printed.
    Lists and dicts are walked; a value without one is returned as it is."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if not value.isascii() else value
    if isinstance(value, list):
        return [valid_text(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    return value


def json_encoder(*, sort_keys: bool = False) -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys).encode``, faster."""
    reference = json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys, check_circular=False)
    make = getattr(_encoder, "c_make_encoder", None)  # not in the type stubs
    if make is None:  # no C accelerator: the standard encoder
        return reference.encode
    encode_str: Callable[[str], str] = _encoder.encode_basestring
    try:
        iterencode = make(None, reference.default, encode_str, None, reference.key_separator,
                          reference.item_separator, sort_keys, reference.skipkeys,
                          reference.allow_nan)
    except TypeError:  # a Python whose C encoder takes other arguments: the standard one
        return reference.encode
    join = "".join

    def encode(value: Any) -> str:
        if isinstance(value, str):  # as JSONEncoder.encode does
            return encode_str(value)
        return join(iterencode(value, 0))

    return encode


# the request body, stored rows and exported lines
to_json = json_encoder()
# with keys sorted: request keys (textsynth.backends.base) and exported attributes
to_sorted_json = json_encoder(sort_keys=True)

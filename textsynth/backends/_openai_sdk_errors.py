"""The ``openai`` SDK's exception for an error of the lean HTTP client.

Code written against the SDK catches ``openai.RateLimitError`` and friends; the
backend raises textsynth's own errors and attaches the SDK's equivalent as their
``__cause__`` (only for errors that end a run: the SDK takes ~0.4 s to import).
"""

from __future__ import annotations

import json
from typing import Any

from textsynth.backends._openai_http import timed_out
from textsynth.errors import BackendError, BackendUnavailable, RateLimited

__all__ = ["sdk_error"]


def sdk_error(exc: BackendError, url: str) -> Exception | None:
    """The ``openai`` SDK's exception for a failure of the lean client, or None.

    Only errors that end a run are translated (the SDK takes ~0.4 s to import):
    they leave the backend with the SDK's exception as their ``__cause__``, so code
    written against the SDK's error types still sees them.
    """
    try:
        import openai
        try:
            import httpx2 as http  # what recent SDKs use
        except ImportError:
            import httpx as http  # type: ignore[no-redef]
    except ImportError:
        return None
    request = http.Request("POST", url)
    if isinstance(exc, BackendUnavailable):
        if timed_out(exc):
            return openai.APITimeoutError(request=request)
        return openai.APIConnectionError(message=str(exc), request=request)
    status = 429 if isinstance(exc, RateLimited) else getattr(exc, "status", None)
    if not isinstance(status, int) or status < 400:
        return None
    raw = getattr(exc, "body", "") or ""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw or None
    data = body.get("error", body) if isinstance(body, dict) else body
    kinds: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError, 401: openai.AuthenticationError,
        403: openai.PermissionDeniedError, 404: openai.NotFoundError,
        409: openai.ConflictError, 422: openai.UnprocessableEntityError,
        429: openai.RateLimitError}
    kind = kinds.get(status, openai.InternalServerError if status >= 500
                     else openai.APIStatusError)
    response = http.Response(status, request=request, content=raw.encode())
    return kind(str(exc), response=response, body=data)

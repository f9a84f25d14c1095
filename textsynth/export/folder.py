"""The output folder: what textsynth owns in it, and what it must leave alone.

Every export lists the files it wrote in ``.textsynth-manifest.json`` (for an output
of an earlier version, which kept no manifest, the run store's record of its last
export stands in). A later export replaces or removes only files listed there, so
whatever else a user keeps in the folder (their own ``data/``, notes, a ``README.md``
textsynth did not write) survives a rerun. A file textsynth would have to replace but
did not write stops the run with an :class:`~textsynth.errors.ExportError` before
anything is sent, unless ``overwrite`` is given; so does a non-empty folder that is
not a textsynth output at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from textsynth.errors import ExportError
from textsynth.store import LOCK_SUFFIX, STORE_NAME, peek_meta

__all__ = ["CARD", "MANIFEST", "check_folder", "claim", "foreign", "read_manifest",
           "remove_stale", "staging_folder", "write_manifest"]

MANIFEST = ".textsynth-manifest.json"
CARD = "README.md"
_STAGING = ".textsynth-export-"
_MARKERS = (MANIFEST, STORE_NAME, STORE_NAME + LOCK_SUFFIX)
_OVERWRITE = "pass --overwrite (overwrite=True) to replace it"


def read_manifest(out: Path) -> set[str]:
    """The files (relative POSIX paths) that textsynth wrote into ``out``."""
    path = out / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _from_store(out)
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path}, the list of files textsynth wrote: {exc}; "
                          "delete it and rerun with --overwrite") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) and _plain(f) for f in files):
        raise ExportError(f"{path} is not a list of files textsynth wrote in this folder; "
                          "delete it and rerun with --overwrite")
    return set(files)


def _from_store(out: Path) -> set[str]:
    """What an export of an earlier version (which kept no manifest) wrote, as its run
    store recorded it: the entries it listed, everything under them, and the card."""
    export = peek_meta(out, "export")
    listed = export.get("files") if isinstance(export, dict) else None
    if not isinstance(listed, list):
        return set()
    files = {CARD}
    for entry in listed:
        if isinstance(entry, str) and _plain(entry) and (out / entry).exists():
            files.update(_files_under(out / entry, out))
    return files


def _plain(rel: str) -> bool:
    """A relative path inside the folder: no root, drive, '..' or backslash."""
    parts = PurePosixPath(rel).parts
    return bool(parts) and "\\" not in rel and ":" not in rel and \
        not PurePosixPath(rel).is_absolute() and all(p not in (".", "..") for p in parts)


def write_manifest(out: Path, files: Iterable[str]) -> None:
    """Replace the manifest atomically (a crash leaves the old one or the new one)."""
    path = out / MANIFEST
    tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"files": sorted(set(files))}, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _files_under(path: Path, root: Path) -> list[str]:
    """Every file (and link) at or under ``path``, relative to ``root``."""
    if path.is_symlink() or not path.is_dir():
        return [path.relative_to(root).as_posix()]
    found = []
    for folder, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            found.append((Path(folder) / name).relative_to(root).as_posix())
    return found


def foreign(out: Path, names: Iterable[str], manifest: set[str]) -> list[str]:
    """The entries among ``names`` that exist in ``out`` and hold anything textsynth did
    not write (an empty folder of that name counts as the user's, too)."""
    found = []
    for name in sorted(set(names)):
        path = out / name
        if not (path.exists() or path.is_symlink()):
            continue
        files = _files_under(path, out)
        ours = any(f == name or f.startswith(f"{name}/") for f in manifest)
        if not ours or any(f not in manifest for f in files):
            found.append(name)
    return found


def is_output(out: Path) -> bool:
    """Whether ``out`` holds a textsynth run (a store, a lock or a manifest)."""
    return any((out / name).exists() for name in _MARKERS)


def _check_not_in_an_export(out: Path) -> None:
    """Refuse an output folder inside what another run exports (its ``dataset/`` or
    ``data/``): that run's next export would replace it, its run store included."""
    resolved = out.resolve()
    for outer in resolved.parents:
        if not (outer / STORE_NAME).is_file():
            continue
        top = resolved.relative_to(outer).parts[0]
        try:
            written = {Path(f).parts[0] for f in read_manifest(outer)}
        except ExportError:
            written = set()
        if top in written | {"dataset", "data"}:
            raise ExportError(f"{out} is inside {outer / top}, which the run in {outer} "
                              "exports and would replace: choose a folder outside it")


def check_folder(out: Path, names: Iterable[str], overwrite: bool = False,
                 recipe: str | None = None) -> None:
    """Refuse, before a run starts, an output folder where the export would replace
    or remove something textsynth did not write, or (``recipe``: this run's recipe
    name) the output of a recipe of another name, whose run store this run would
    share and whose dataset it would replace."""
    _check_not_in_an_export(out)
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise ExportError(f"the output folder {out} is a file: choose another --out")
    if overwrite:
        return
    if not is_output(out):
        try:
            empty = next(out.iterdir(), None) is None
        except OSError as exc:
            raise ExportError(f"cannot read the output folder {out}: "
                              f"{exc.strerror or exc}") from exc
        if not empty:
            raise ExportError(f"{out} is not empty and is not a textsynth output folder: "
                              "choose a new or empty folder, or pass --overwrite "
                              "(overwrite=True) to write into it, replacing files of the "
                              "same names")
        return
    _check_same_recipe(out, recipe)
    taken = foreign(out, names, read_manifest(out))
    if taken:
        raise ExportError(f"{out / taken[0]} was not written by textsynth (it is not in "
                          f"{MANIFEST}) and an export would replace it: move it away, or "
                          f"{_OVERWRITE}")


def _check_same_recipe(out: Path, recipe: str | None) -> None:
    """Refuse the output of another recipe (by name, as its run store recorded it)."""
    previous = peek_meta(out, "recipe") if recipe is not None else None
    name = previous.get("name") if isinstance(previous, dict) else None
    if isinstance(name, str) and name != recipe:
        raise ExportError(f"{out} holds the run of recipe '{name}': a run of '{recipe}' "
                          "would share its run store and replace its dataset; give this "
                          "recipe a folder of its own (export.dir, or --out), or pass "
                          "--overwrite (overwrite=True) to write there all the same (a "
                          "renamed recipe resuming its own run)")


def claim(out: Path, names: Iterable[str], files: Iterable[str], overwrite: bool) -> None:
    """Check that the entries ``names`` may be replaced, then list ``files`` as
    textsynth's before writing them (a crash half-way leaves them claimed, not lost)."""
    manifest = read_manifest(out)
    taken = foreign(out, names, manifest)
    if taken and not overwrite:
        raise ExportError(f"{out / taken[0]} was not written by textsynth (it is not in "
                          f"{MANIFEST}) and the export would replace it: move it away, or "
                          f"{_OVERWRITE}")
    write_manifest(out, manifest | set(files))


def remove_stale(out: Path, old: set[str], keep: set[str]) -> None:
    """Remove the files of an earlier export (``old``) that the new one (``keep``) does
    not have, and the folders they leave empty; nothing else."""
    for rel in sorted(old - keep, reverse=True):
        path = out / rel
        if any((out / parent).is_symlink() for parent in PurePosixPath(rel).parents
               if str(parent) != "."):
            continue  # a link the user put in place of a folder: what it points to is not ours
        if path.is_symlink() or path.is_file():
            path.unlink()
        parent = path.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def staging_folder(out: Path) -> Path:
    """A new staging folder of this process in ``out``; those of dead processes go."""
    # earlier versions staged every export in one folder of this name
    shutil.rmtree(out / _STAGING.rstrip("-"), ignore_errors=True)
    with contextlib.suppress(OSError):
        for old in out.glob(f"{_STAGING}*"):
            pid = old.name.removeprefix(_STAGING).split("-")[0]
            if old.is_dir() and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=out))


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill would not just probe there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, but belongs to someone else
    return True

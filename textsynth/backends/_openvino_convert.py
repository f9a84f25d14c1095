"""Model preparation for the openvino backend: convert once, cache, load in seconds.

A GGUF file (the embedded SmolLM2 or any llama-family GGUF) is read by OpenVINO GenAI
itself, which saves the converted model and tokenizer (OpenVINO IR); no torch or
optimum is needed. A transformers folder goes through ``optimum-cli export openvino``
in a subprocess (the ``optimum-intel`` package). A folder that already holds
``openvino_model.xml`` is used as it is.

Converted models live under ``<cache>/openvino/<sha256 of the source>-ov<version>/``:
keyed by the source's content and the engine version, written to a temporary folder
and renamed into place, so a half-written conversion is never loaded and two runs
converting at once do not corrupt each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from textsynth.errors import BackendError, RecipeError

__all__ = ["PreparedModel", "cache_root", "optimum_cli", "prepare_model", "source_digest"]

IR_FILES = ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml",
            "openvino_detokenizer.xml")


@dataclass(frozen=True)
class PreparedModel:
    """An OpenVINO IR folder, and whether this call had to build it (and how long it took)."""

    path: Path
    converted: bool = False
    seconds: float = 0.0


def cache_root(option: str | None = None) -> Path:
    """``option``, else ``$TEXTSYNTH_CACHE``, else ``$XDG_CACHE_HOME/textsynth``: the model
    cache, created if need be (one that cannot be is a :class:`RecipeError`)."""
    if option:
        root = Path(option).expanduser()
    elif os.environ.get("TEXTSYNTH_CACHE"):
        root = Path(os.environ["TEXTSYNTH_CACHE"]).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "textsynth"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a path that cannot be made
        raise RecipeError(f"cannot use {root} as the model cache ({exc.strerror or exc}): "
                          "point TEXTSYNTH_CACHE or backend.options.cache_dir at a folder",
                          field="backend.options.cache_dir") from None
    return root


def _is_ir(folder: Path) -> bool:
    return all((folder / name).is_file() for name in IR_FILES)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def source_digest(source: Path, root: Path) -> str:
    """SHA-256 over the source's files (names and contents).

    Hashes are remembered in ``<root>/hashes.json`` by path, size and mtime, so a
    multi-gigabyte model is read once, not at every load.
    """
    files = [source] if source.is_file() else sorted(
        p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
    memo_path = root / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    total = hashlib.sha256()
    changed = False
    for f in files:
        st = f.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        entry = memo.get(str(f.resolve()))
        if not entry or entry[:2] != stamp:
            entry = [*stamp, _file_sha256(f)]
            memo[str(f.resolve())] = entry
            changed = True
        name = "" if source.is_file() else str(f.relative_to(source))
        total.update(f"{name}\0{entry[2]}\n".encode())
    if changed:  # a memo only: a cache that cannot be written (shared, read-only) still serves
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            root.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(memo))
            os.replace(tmp, memo_path)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return total.hexdigest()


def prepare_model(source: Path, root: Path, engine_version: str) -> PreparedModel:
    """The IR folder for ``source`` (a .gguf file, an IR folder or a transformers folder)."""
    if source.is_dir() and _is_ir(source):
        return PreparedModel(source)
    is_gguf = source.is_file() and source.suffix == ".gguf"
    if not is_gguf and not (source / "config.json").is_file():
        raise RecipeError(f"'{source}' is neither a gguf file, an OpenVINO model folder nor a "
                          "transformers model folder", field="backend.options.model")
    key = f"{source_digest(source, root)[:24]}-ov{engine_version}"
    target = root / "openvino" / key
    if _is_ir(target):
        return PreparedModel(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.TemporaryDirectory(prefix=f".{key}.", dir=target.parent)
    except OSError as exc:  # a read-only cache without this model converted
        raise RecipeError(f"cannot convert the model into the cache {root} "
                          f"({exc.strerror or exc}): point TEXTSYNTH_CACHE or "
                          "backend.options.cache_dir at a folder textsynth can write",
                          field="backend.options.cache_dir") from None
    start = time.perf_counter()
    with scratch as tmp:
        work = Path(tmp) / "model"
        work.mkdir()
        if is_gguf:
            _convert_gguf(source, work)
        else:
            _convert_transformers(source, work)
        (work / "textsynth-source.json").write_text(json.dumps(
            {"source": str(source), "key": key, "engine": f"openvino-genai {engine_version}"}))
        try:
            os.replace(work, target)
        except OSError:
            if not _is_ir(target):  # another run renamed its copy first: use that one
                raise
    return PreparedModel(target, converted=True, seconds=time.perf_counter() - start)


def _convert_gguf(source: Path, work: Path) -> None:
    import openvino_genai as ov_genai

    # OpenVINO GenAI saves the IR next to the file it read: read it through a link
    link = work / "model.gguf"
    link.symlink_to(source.resolve())
    try:
        ov_genai.LLMPipeline(str(link), "CPU", enable_save_ov_model=True)
    except Exception as exc:  # the GGUF reader raises IndexError, RuntimeError, ...
        raise BackendError(f"OpenVINO GenAI cannot convert {source}: "
                           f"{_last_line(exc)}") from exc
    finally:
        link.unlink()
    if not _is_ir(work):
        raise BackendError(f"OpenVINO GenAI converted {source} but wrote no complete model")


def optimum_cli() -> str | None:
    """The ``optimum-cli`` that converts transformers folders: ``$TEXTSYNTH_OPTIMUM_CLI``
    (one in an environment of its own: optimum-intel pins an older transformers), else
    the one on ``PATH``."""
    given = os.environ.get("TEXTSYNTH_OPTIMUM_CLI")
    if given:
        path = Path(given).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which("optimum-cli")


def _convert_transformers(source: Path, work: Path) -> None:
    cli = optimum_cli()
    if cli is None:
        given = os.environ.get("TEXTSYNTH_OPTIMUM_CLI")
        where = (f"TEXTSYNTH_OPTIMUM_CLI={given} is not an executable file" if given else
                 "no optimum-cli on PATH and TEXTSYNTH_OPTIMUM_CLI is not set")
        raise RecipeError(
            f"the openvino backend converts the transformers folder {source} once with "
            f"optimum-intel, but {where}: install it in an environment of its own "
            "(README: 'Gemma 3 270M on openvino') and set TEXTSYNTH_OPTIMUM_CLI to its "
            "optimum-cli; or give a .gguf file or an OpenVINO folder, or use the "
            "transformers backend",
            field="backend.options.model")
    cmd = [cli, "export", "openvino", "--model", str(source), "--task",
           "text-generation-with-past", "--weight-format", "fp16", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0 or not _is_ir(work):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BackendError(f"optimum-cli could not convert {source}: {tail[0]}")


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__

"""Generation on a pool of Ray actors, each holding one instance of the recipe's backend.

The driver (this process) keeps planning, quotas, top-up, the quality gate and the
run store: :class:`RayExecutor` is a :class:`~textsynth.backends.Backend` to the
engine, and hands each batch of requests to a free replica. Ray places the replicas
(``num_cpus``/``num_gpus`` each) and keeps them alive: a replica whose process dies is
restarted by Ray (``max_restarts``), which builds a fresh backend in it and re-sends
the calls that were in flight on it exactly once (``max_task_retries=1``). Nothing the
engine has stored is sent again: only calls whose answer never came back are in flight.

A free replica is taken from an asyncio queue that holds each replica once per call it
may run at a time (the backend's ``concurrency``): the same "hand work to an idle
actor" rule as :class:`ray.util.ActorPool`, awaited from the engine's event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

from textsynth._deps import require
from textsynth.backends import Backend
from textsynth.backends.base import Completion, Request
from textsynth.errors import BackendUnavailable, RecipeError, TextsynthError
from textsynth.executors import backend_from_spec
from textsynth.redact import redact_text

if TYPE_CHECKING:
    from textsynth.recipe import ExecutionSpec

__all__ = ["RayExecutor"]


class _Failure:
    """A textsynth error raised in a replica, carried back as plain data.

    Exceptions with keyword or several positional arguments do not survive pickling
    as themselves; this rebuilds the same class with the same message and attributes.
    """

    def __init__(self, exc: TextsynthError) -> None:
        self.module = type(exc).__module__
        self.qualname = type(exc).__qualname__
        self.message = str(exc)
        self.attrs = {k: v for k, v in vars(exc).items() if _plain(v)}

    def rebuild(self) -> TextsynthError:
        cls: type[TextsynthError] = getattr(import_module(self.module), self.qualname)
        exc = cls.__new__(cls)
        Exception.__init__(exc, self.message)
        exc.__dict__.update(self.attrs)
        return exc


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class _Replica:
    """The actor: builds the backend from the recipe's spec and serves ``generate`` calls."""

    def __init__(self, backend_type: str, options: Mapping[str, Any]) -> None:
        self.error: _Failure | None = None
        self.dropping = False  # the run is ending: requests still queued are dropped
        try:
            self.backend: Backend | None = backend_from_spec(backend_type, options)
        except TextsynthError as exc:  # reported by ready() and generate(), not as a crash
            self.backend, self.error = None, _Failure(exc)

    def ready(self) -> tuple[int, _Failure | None]:
        return os.getpid(), self.error

    async def generate(self, requests: list[Request]
                       ) -> tuple[int, list[Completion] | _Failure | None]:
        """The completions, the error the backend raised, or None: the requests waited in
        the backend's queue and were dropped (:meth:`cancel_queued`), never sent."""
        if self.backend is None:
            assert self.error is not None
            return os.getpid(), self.error
        if self.dropping:  # a call that reached the replica after cancel_queued
            return os.getpid(), None
        try:
            return os.getpid(), await self.backend.generate(requests)
        except TextsynthError as exc:
            return os.getpid(), _Failure(exc)
        except asyncio.CancelledError:
            if self.dropping:  # its wait for a place was cancelled, not the call itself
                return os.getpid(), None
            raise

    def cancel_queued(self) -> None:
        self.dropping = True
        if self.backend is not None:
            self.backend.cancel_queued()

    async def aclose(self) -> None:
        if self.backend is not None:
            await self.backend.aclose()


class RayExecutor(Backend):
    """Sends the engine's batches to ``execution.replicas`` Ray actors running the backend.

    The executor takes the backend's name and model, so request keys (and therefore
    the run store's cache and resume) are the same as in a single-process run.
    ``max_concurrency`` is the backend's own concurrency times the replicas.
    """


    def __init__(self, backend_type: str, options: Mapping[str, Any],
                 execution: ExecutionSpec) -> None:
        # built here only to validate the options and to read name, model and batch
        # size: constructing a backend never loads a model or opens a connection
        self._template = backend_from_spec(backend_type, options)
        super().__init__(self._template.options)
        self.name = self._template.name
        self._type = backend_type
        self._options = dict(options)
        self.execution = execution
        self._actors: list[Any] = []
        self._free: asyncio.Queue[int] | None = None
        self._pids: dict[int, int] = {}
        self._started_ray = False
        self._starting: asyncio.Lock | None = None
        self._failed: TextsynthError | None = None
        self.stats: Counter[str] = Counter()

    @property
    def model_name(self) -> str:
        return self._template.model_name

    @property
    def batch_size(self) -> int:
        return self._template.batch_size

    @property
    def max_concurrency(self) -> int:
        return self._template.max_concurrency * self.execution.replicas

    # -- starting the pool ---------------------------------------------------------
    def _connect(self) -> Any:
        ray = require("ray", "execution.engine 'ray'")
        if not ray.is_initialized():
            address = self.execution.address or os.environ.get("RAY_ADDRESS") or None
            # ray.init replaces the SIGTERM handler with one that exits at once (after a
            # native stack dump): the run's own (store the answers in flight, then stop,
            # as Ctrl-C does) is put back
            main = threading.current_thread() is threading.main_thread()
            sigterm = signal.getsignal(signal.SIGTERM) if main else None
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BackendUnavailable(f"cannot reach the Ray cluster at {address}: {exc}"
                                         ) from None
            finally:
                if sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
            self._started_ray = True
        return ray

    def _check_fits(self, ray: Any) -> None:
        ex = self.execution
        have = ray.cluster_resources()
        for resource, need in (("CPU", ex.num_cpus), ("GPU", ex.num_gpus)):
            if need and have.get(resource, 0.0) < need:
                raise RecipeError(
                    f"one replica needs {need:g} {resource}, the Ray cluster has "
                    f"{have.get(resource, 0.0):g} in all",
                    field=f"execution.num_{resource.lower()}s")
            total = need * ex.replicas
            if need and have.get(resource, 0.0) < total:
                raise RecipeError(
                    f"{ex.replicas} replicas x {need:g} {resource} need {total:g} {resource}, "
                    f"the Ray cluster has {have.get(resource, 0.0):g}", field="execution.replicas")

    async def start(self) -> None:
        """Connect to Ray and start the replicas now (otherwise the first call does)."""
        await self._start()

    async def _start(self) -> asyncio.Queue[int]:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._free is not None:
                return self._free
            if self._failed is not None:  # once is enough: every waiting call gets the error
                raise self._failed
            try:
                return await self._start_replicas()
            except TextsynthError as exc:
                self._failed = exc
                raise

    async def _start_replicas(self) -> asyncio.Queue[int]:
        ray = self._connect()
        self._check_fits(ray)
        ex = self.execution
        # max_concurrency: the calls one replica runs at once (its async event loop); the
        # executor hands it per_replica generate calls at most, so one place is always
        # free for cancel_queued (which must not wait behind the calls it drops)
        per_replica = self._template.max_concurrency
        actor_cls = ray.remote(
            num_cpus=ex.num_cpus, num_gpus=ex.num_gpus, max_restarts=ex.max_restarts,
            max_task_retries=1, max_concurrency=per_replica + 1)(_Replica)
        self._actors = [actor_cls.remote(self._type, self._options)
                        for _ in range(ex.replicas)]
        answers = await asyncio.gather(*(a.ready.remote() for a in self._actors))
        for index, (pid, failure) in enumerate(answers):
            if failure is not None:
                raise failure.rebuild()
            self._pids[index] = pid
        free: asyncio.Queue[int] = asyncio.Queue()
        for _ in range(per_replica):
            for index in range(len(self._actors)):
                free.put_nowait(index)
        self._free = free
        return free

    # -- the Backend interface -------------------------------------------------------
    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        free = self._free or await self._start()
        index = await free.get()
        try:
            pid, answer = await self._call(index, list(requests))
        finally:
            free.put_nowait(index)
        if pid != self._pids.get(index):
            self.stats["replica_restarts"] += 1
            self._pids[index] = pid
        self.stats["calls"] += 1
        if isinstance(answer, _Failure):
            raise answer.rebuild()
        if answer is None:  # dropped unsent in the replica (cancel_queued), as a local
            self.stats["dropped_unsent"] += len(requests)  # backend's queued call is
            raise asyncio.CancelledError
        self.stats["requests"] += len(requests)
        return answer

    def cancel_queued(self) -> None:
        """Calls that wait for a place in a replica's backend (its concurrency is lower
        than the calls a replica takes at once) are dropped there; they end cancelled,
        as a local backend's queued calls do. What is on the wire is answered and stored."""
        for actor in self._actors:
            actor.cancel_queued.remote()

    async def _call(self, index: int, requests: list[Request]
                    ) -> tuple[int, list[Completion] | _Failure | None]:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            result: tuple[int, list[Completion] | _Failure | None] = \
                await self._actors[index].generate.remote(requests)
        except RayActorError as exc:
            raise BackendUnavailable(f"Ray replica {index} died and was not brought back "
                                     f"(execution.max_restarts={self.execution.max_restarts}): "
                                     f"{str(exc).splitlines()[0]}") from None
        except RayTaskError as exc:  # say what the replica raised, not where it ran
            cause = getattr(exc, "cause", None)
            lines = [line for line in str(exc).splitlines() if line.strip()]
            what = f"{type(cause).__name__}: {cause}".rstrip(": ") if cause is not None \
                else (lines[-1] if lines else type(exc).__name__)
            raise BackendUnavailable(f"Ray replica {index} failed: {redact_text(what)}") \
                from None
        return result

    async def aclose(self) -> None:
        """Close each replica's backend, end the actors, and the local cluster if started here."""
        if not self._actors and not self._started_ray:
            return
        import ray

        closing = [a.aclose.remote() for a in self._actors]
        await asyncio.gather(*closing, return_exceptions=True)
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors, self._free = [], None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

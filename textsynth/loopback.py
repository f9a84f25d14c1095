"""Servers on 127.0.0.1 for tests and benchmarks.

:class:`LoopbackServer`: an aiohttp application served from the running event loop, or
from a background thread for synchronous tests and benchmarks, stopping by itself after
``lifetime`` seconds. Subclasses give the application (:meth:`LoopbackServer.app`);
:class:`~textsynth.testing.FaultServer` is one.

:func:`server_process`: a real server in a process of its own (``vllm serve``,
``transformers serve`` ...), waited for until it answers and stopped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Self

from aiohttp import web

__all__ = ["LoopbackServer", "free_port", "server_process"]


class LoopbackServer:
    """Serves :meth:`app` on 127.0.0.1 (``port`` 0: any free port, set once started)."""

    def __init__(self, *, port: int = 0, lifetime: float = 600.0) -> None:
        self.port = port
        self.lifetime = lifetime
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def app(self) -> web.Application:
        raise NotImplementedError(f"{type(self).__name__} has no app()")

    async def start_async(self) -> None:
        """Start serving on the running event loop."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._stopped = asyncio.Event()
        asyncio.get_running_loop().call_later(self.lifetime, self._stopped.set)

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve_until_stopped(self) -> None:
        await self.start_async()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            await self.stop_async()

    def start(self) -> Self:
        """Serve from a background thread; returns once the port is open."""
        ready = threading.Event()
        failed: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # a port in use, no app: said by start()
                failed.append(exc)
                loop.close()
                return
            finally:
                ready.set()
            assert self._stopped is not None
            loop.run_until_complete(self._stopped.wait())
            loop.run_until_complete(self.stop_async())
            left = asyncio.all_tasks(loop)  # handlers still hanging on purpose
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=main, name=f"textsynth-{type(self).__name__}",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"the {type(self).__name__} did not start")
        if failed:
            self._thread.join(10)
            self._thread = None
            raise failed[0]
        return self

    def stop(self) -> None:
        """Stop the background server (closing its connections) and wait for it."""
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(cmd: Sequence[str], ready_url: str, *, timeout: float, name: str,
                   env: Mapping[str, str] | None = None, log: Path | None = None
                   ) -> Iterator[subprocess.Popen[bytes]]:
    """Run a real server (``vllm serve``, ``transformers serve`` ...) while the block runs.

    Waits until ``GET ready_url`` answers 200; raises RuntimeError (with the end of
    ``log``, where its output goes) if the process exits first or ``timeout`` seconds
    pass. The process is terminated after the block (killed if it lingers).
    """
    def failed(why: str) -> RuntimeError:
        tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() \
            else ""
        return RuntimeError(f"{name} {why}" + (f":\n{tail}" if tail else ""))

    with contextlib.ExitStack() as files:  # the child keeps its own handle on the log
        out = files.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise failed(f"exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(ready_url, timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise failed(f"did not answer {ready_url} within {timeout:g} s")
            time.sleep(1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

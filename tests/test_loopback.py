"""LoopbackServer: an aiohttp app on 127.0.0.1, from a thread or the running loop."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from textsynth.loopback import LoopbackServer, free_port, server_process


class Hello(LoopbackServer):
    def app(self) -> web.Application:
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"hello": request.query.get("name", "world")})

        app = web.Application()
        app.router.add_get("/hello", hello)
        return app


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def test_a_thread_serves_on_a_free_port_until_stopped() -> None:
    with Hello() as server:
        assert server.port > 0
        assert _get(server.port, "/hello?name=x") == {"hello": "x"}
        port = server.port
    with pytest.raises(urllib.error.URLError):
        _get(port, "/hello")


def test_it_serves_on_the_running_loop_and_stops_after_its_lifetime() -> None:
    async def go() -> dict:
        server = Hello(lifetime=0.2)
        serving = asyncio.create_task(server.serve_until_stopped())
        while server.port == 0:
            await asyncio.sleep(0.01)
        answer = await asyncio.to_thread(_get, server.port, "/hello")
        await asyncio.wait_for(serving, 10)  # the lifetime ends it, nothing else
        return answer

    assert asyncio.run(go()) == {"hello": "world"}


def test_a_server_that_cannot_start_says_why_at_once() -> None:
    with pytest.raises(NotImplementedError, match="LoopbackServer has no app"):
        LoopbackServer().start()
    with Hello() as first, pytest.raises(OSError):  # the port is taken
        Hello(port=first.port).start()


def test_server_process_waits_for_a_real_server_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "ready").write_text("ok")
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
           "--directory", str(tmp_path)]
    with server_process(cmd, f"http://127.0.0.1:{port}/ready", timeout=60,
                        name="http.server") as proc:
        assert proc.poll() is None
    assert proc.poll() is not None  # stopped after the block


def test_server_process_says_why_a_server_did_not_start(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"(?s)broken exited with 3.*no model here"), \
            server_process(cmd, f"http://127.0.0.1:{free_port()}/", timeout=60,
                           name="broken", log=log):
        pass


def test_the_fault_server_replies_pass_the_form_rule() -> None:
    # tests count the requests a run needs: every default reply must be a row the gate
    # keeps (a word said twice, "please check bravo bravo ...", is form:repeated_word)
    from textsynth.quality.form import form_problem
    from textsynth.testing import default_reply

    texts = [t for i in range(300) for t in json.loads(default_reply({"i": i}, 0, items=8))]
    assert len(set(texts)) == len(texts) == 2400
    assert [t for t in texts if form_problem(t)] == []

"""Throughput of the openai backend against a local OpenAI-compatible server.

Starts the project's test server (``python -m textsynth.testing``) in its own
process with a fixed latency, then drives the same number of requests at the
same concurrency through

* ``engine``: the ``openai`` backend and the whole engine (render, parse,
  dedup, the quality rules that need no model, SQLite store), one row per request;
* ``openai``: a plain ``openai.AsyncOpenAI`` loop (the SDK's default httpx transport);
* ``openai-aiohttp``: the same SDK with its aiohttp transport;
* ``aiohttp``: a bare aiohttp loop (the floor of what a Python client costs);

each in a fresh interpreter, and prints requests/s, the share of the ceiling
(concurrency / latency), the client's CPU time per request and its peak RSS.
Then it runs the engine again with faults injected (429 with Retry-After,
500, dropped connections) and prints how much longer that took, whether every
row came back, and whether the server answered any request twice.

    python benchmarks/throughput.py                 # 2000 requests, 256 at once, 200 ms
    python benchmarks/throughput.py --requests 500 --concurrency 64 --clients engine
    python benchmarks/throughput.py --repeat 1 --seed 3   # one run each, other failures
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAULTS = {"rate_limit": 0.05, "server_error": 0.02, "drop": 0.01}
CLIENTS = ("engine", "openai", "openai-aiohttp", "aiohttp")
LABELS = 20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write 1 different thing a user might say. Intent: "
                                        f"label {i % LABELS}. Answer with a numbered list. {i}"}]


# -- clients (each runs in its own interpreter) ----------------------------------------------
async def _engine(url: str, requests: int, concurrency: int, lookahead: int) -> dict[str, Any]:
    from textsynth.engine import Engine
    from textsynth.recipe import load_recipe

    out = tempfile.mkdtemp(prefix="textsynth-bench-")
    recipe = load_recipe({
        "name": "throughput", "labels": {f"label_{i}": f"label {i}" for i in range(LABELS)},
        "per_label": requests // LABELS, "generation": {"examples_per_request": 1},
        "backend": {"type": "openai", "options": {
            "base_url": url, "model": "bench", "api_key": "bench-key",
            "concurrency": concurrency, "lookahead": lookahead}},
        "export": {"dir": out},
        # the rules that need no model: the ones that embed each candidate or identify its
        # language (on by default) measure model work, not the client (benchmarks/driver.py)
        "quality": {"language_id": False, "novelty": False, "semantic": False,
                    "classifier": False, "request": False},
    })
    engine = Engine(recipe)
    try:
        cpu, start = time.process_time(), time.perf_counter()
        result = await engine.run()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows = sum(1 for _ in engine.store.examples())
        return {"seconds": seconds, "cpu": cpu, "requests": result.sent, "rows": rows,
                "unique_rows": len({e.text for e in engine.store.examples()}),
                "complete": result.complete, "replaced": result.replaced,
                "cancelled": result.cancelled,
                "backend": dict(engine.backend.stats)}  # type: ignore[attr-defined]
    finally:
        engine.store.close()
        shutil.rmtree(out, ignore_errors=True)


async def _sdk(url: str, requests: int, concurrency: int, aiohttp: bool) -> dict[str, Any]:
    import openai

    http = {"http_client": openai.DefaultAioHttpClient()} if aiohttp else {}
    client = openai.AsyncOpenAI(base_url=url, api_key="bench-key", **http)  # type: ignore[arg-type]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str | None:
        async with gate:
            answer = await client.chat.completions.create(
                model="bench", messages=_prompt(i), seed=i)  # type: ignore[arg-type]
            return answer.choices[0].message.content

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    return {"seconds": seconds, "cpu": cpu, "requests": requests}


async def _aiohttp(url: str, requests: int, concurrency: int) -> dict[str, Any]:
    import aiohttp

    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench-key"}
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     headers=headers) as session:
        async def one(i: int) -> str:
            body = json.dumps({"model": "bench", "messages": _prompt(i), "seed": i}).encode()
            async with gate, session.post(f"{url}/chat/completions", data=body) as resp:
                data = json.loads(await resp.read())
                return str(data["choices"][0]["message"]["content"])

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "requests": requests}


def child(args: argparse.Namespace) -> None:
    if args.child == "engine":
        coro = _engine(args.url, args.requests, args.concurrency, args.lookahead)
    elif args.child == "aiohttp":
        coro = _aiohttp(args.url, args.requests, args.concurrency)
    else:
        coro = _sdk(args.url, args.requests, args.concurrency, args.child == "openai-aiohttp")
    result = asyncio.run(coro)
    result["rss_mb"] = _peak_rss_mb()
    print(json.dumps(result), flush=True)


# -- the driver ---------------------------------------------------------------------------------
def _server(latency: float, faults: dict[str, float], retry_after: float, seed: int = 0,
            sigma: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in faults.items()]
    proc = subprocess.Popen([sys.executable, "-m", "textsynth.testing", f"--latency={latency}",
                             f"--latency-sigma={sigma}",
                             f"--retry-after={retry_after}", f"--seed={seed}", "--lifetime=900",
                             *flags],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _stop(proc: subprocess.Popen[str]) -> dict[str, Any]:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _measure(name: str, args: argparse.Namespace, faults: dict[str, float]) -> dict[str, Any]:
    proc, url = _server(args.latency, faults, args.retry_after, args.seed, args.latency_sigma)
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--url", url,
               "--requests", str(args.requests), "--concurrency", str(args.concurrency),
               "--lookahead", str(args.lookahead)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    finally:
        server = _stop(proc)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server"] = server
    return result


def startup() -> tuple[float, float]:
    """Seconds for ``textsynth run --help``, and from ``textsynth run`` to its first request."""
    import yaml

    from textsynth.testing import FaultServer

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "textsynth", "run", "--help"], check=True,
                   capture_output=True)
    help_seconds = time.perf_counter() - start
    with FaultServer(items=5) as server, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        path.write_text(yaml.safe_dump({"name": "startup", "labels": {"a": "A"}, "per_label": 5,
                                        "export": {"dir": f"{tmp}/out"}}))
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "textsynth", "run", str(path), "--quiet",
                                 "--base-url", server.url, "--model", "m"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not server.stats["requests"] and proc.poll() is None:
            time.sleep(0.002)
        first_request = time.perf_counter() - start
        proc.wait(120)
    return help_seconds, first_request


def _rate(r: dict[str, Any]) -> float:
    return float(r["requests"] / r["seconds"])


def _cpu_ms(r: dict[str, Any]) -> float:
    return float(1000 * r["cpu"] / r["requests"])


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median duration."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def _row(name: str, runs: list[dict[str, Any]], ceiling: float) -> str:
    r = _median(runs)
    rate = _rate(r)
    line = (f"{name:<16} {rate:>8.0f} {rate / ceiling:>8.0%} {r['seconds']:>7.2f} "
            f"{_cpu_ms(r):>8.3f} {max(x['rss_mb'] for x in runs):>7.0f}")
    if len(runs) > 1:
        rates, cpus = [_rate(x) for x in runs], [_cpu_ms(x) for x in runs]
        line += (f"   req/s {min(rates):.0f}-{max(rates):.0f}, "
                 f"cpu ms {min(cpus):.3f}-{max(cpus):.3f}")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--latency-sigma", type=float, default=0.0, help=(
        "answer times spread log-normally around --latency (1: the slowest 1%% take ~10x "
        "the median), as answers of different lengths do"))
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--lookahead", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="which requests the server fails")
    parser.add_argument("--repeat", type=int, default=3, help=(
        "runs per client, taken in turns (the machine's speed drifts); the median run is "
        "shown, with the range"))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--no-faults", action="store_true", help="skip the runs with faults")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    help_seconds, first_request = startup()
    print(f"startup: `textsynth run --help` {help_seconds:.2f} s; `textsynth run` to its first "
          f"request {first_request:.2f} s")
    ceiling = args.concurrency / args.latency
    print(f"{args.requests} requests, {args.concurrency} at once, server latency "
          f"{args.latency * 1000:.0f} ms: ceiling {ceiling:.0f} requests/s"
          + (f"; median of {args.repeat} runs each" if args.repeat > 1 else ""))
    print(f"{'client':<16} {'req/s':>8} {'ceiling':>8} {'seconds':>7} {'cpu ms':>8} {'rss MB':>7}")
    clients = args.clients.split(",")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
    for _ in range(max(1, args.repeat)):
        for name in clients:
            runs[name].append(_measure(name, args, {}))
    for name in clients:
        print(_row(name, runs[name], ceiling), flush=True)
    if "engine" in runs and "openai" in runs:
        speedup = _median(runs["openai"])["seconds"] / _median(runs["engine"])["seconds"]
        print(f"engine vs plain AsyncOpenAI loop: {speedup:.1f}x")
    if not args.no_faults and "engine" in runs:
        clean = _median(runs["engine"])["seconds"]
        faulty = [_measure("engine", args, FAULTS) for _ in range(max(1, args.repeat))]
        runs["engine_faults"] = faulty
        print(f"\nwith faults {FAULTS} (Retry-After {args.retry_after:g} s):")
        print(_row("engine+faults", faulty, ceiling))
        for f in faulty:
            server = f["server"]
            print(f"  {f['seconds'] / clean:.2f}x the clean run; rows "
                  f"{f['unique_rows']}/{args.requests} unique; answered twice: "
                  f"{server.get('duplicates')}; server saw {server.get('rate_limit', 0)} 429, "
                  f"{server.get('server_error', 0)} 500, {server.get('drop', 0)} drops; "
                  f"client retries {f['backend'].get('retries', 0)}, of which "
                  f"{f['replaced']} were replaced by other jobs instead")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()

"""Soak test: 20,000 requests through the openai backend, faults, and kill -9 + resume.

A :class:`~textsynth.testing.FaultServer` on 127.0.0.1 answers with 5% 429
(Retry-After drawn up to 30 s; the recipe caps it with ``max_retry_after``),
2% 500, 1% dropped connections and 1% bodies of 10 MB streamed without a length
(larger than ``max_response_bytes``: not read, retried). A ``textsynth run``
process is killed with SIGKILL three times (at a quarter, half and three
quarters of the rows) and started again each time; the fourth run finishes.

It prints the requests sent, the rows exported, duplicated rows (must be 0),
lost rows (must be 0: every quota met, and no completion stored before a kill
missing afterwards) and the answers paid for twice because a kill hit them in
flight (the only loss a kill -9 can cause), and exits 1 if a check fails.

    python benchmarks/soak.py                        # 20,000 rows, about 2-4 minutes
    python benchmarks/soak.py --rows 2000 --kills 1  # a quick look
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from driver import OFF as CHEAP_GATE  # the benchmarks' folder is the script's

from textsynth.testing import FaultServer

FAULTS = {"rate_limit": 0.05, "server_error": 0.02, "drop": 0.01, "huge": 0.01}
LABELS = 20


def _recipe(folder: Path, url: str, rows: int, max_retry_after: float) -> Path:
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump({
        "name": "soak", "labels": {f"label_{i}": f"label {i}" for i in range(LABELS)},
        "per_label": rows // LABELS, "generation": {"examples_per_request": 1},
        # the rules that need no model (driver.py's cheap gate): the mock's rows are
        # made-up words, which the rules that read meaning reject
        "quality": {"min_words": 1, **CHEAP_GATE},
        "export": {"dir": str(folder / "out"), "formats": ["parquet", "jsonl"]},
        "backend": {"type": "openai", "options": {
            "base_url": url, "model": "soak", "api_key": "soak-key-not-secret",
            "concurrency": 64, "max_retries": 12, "backoff": 0.05, "max_backoff": 1.0,
            "max_retry_after": max_retry_after, "timeout": 30}},
    }))
    return path


def _stored_keys(db: Path) -> set[str]:
    if not db.exists():
        return set()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return {k for (k,) in con.execute("SELECT key FROM completions")}
    except sqlite3.OperationalError:  # not created yet
        return set()
    finally:
        con.close()


def _run(recipe: Path, kill_at: int | None, db: Path, limit: float) -> tuple[int, float]:
    """One ``textsynth run``; killed with SIGKILL once ``kill_at`` completions are stored."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "textsynth", "run", str(recipe), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            if time.perf_counter() - start > limit:
                raise TimeoutError(f"a run took more than {limit:g} s")
            if kill_at is not None and len(_stored_keys(db)) >= kill_at:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if kill_at is None and proc.returncode != 0:
        raise RuntimeError(f"the last run failed ({proc.returncode}): "
                           f"{(proc.stderr.read() if proc.stderr else '')[-2000:]}")
    return proc.returncode, time.perf_counter() - start


def _exported(out: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(out.glob("*.jsonl")):
        if path.name.startswith("rejected"):
            continue
        rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    return rows


def soak(rows: int, kills: int, retry_after_max: float, max_retry_after: float,
         latency: float, limit: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="textsynth-soak-"))
    db = folder / "out" / "textsynth.db"
    started = time.perf_counter()
    with FaultServer(latency=latency, latency_sigma=0.5, faults=FAULTS, retry_after=0,
                     retry_after_max=retry_after_max, huge_bytes=10 * 1024 * 1024, seed=1,
                     lifetime=limit + 60, keep=10) as server:
        recipe = _recipe(folder, server.url, rows, max_retry_after)
        runs, before_kill = [], []
        for i in range(kills):
            code, seconds = _run(recipe, rows * (i + 1) // (kills + 1), db, limit)
            before_kill.append(_stored_keys(db))
            runs.append({"kill": i + 1, "stored": len(before_kill[-1]), "exit": code,
                         "seconds": round(seconds, 1)})
        code, seconds = _run(recipe, None, db, limit)
        runs.append({"final": True, "exit": code, "seconds": round(seconds, 1)})
        stats, paid_twice = dict(server.stats), sum(n - 1 for n in server.duplicates().values())
    final = _stored_keys(db)
    exported = _exported(folder / "out")
    texts = Counter(r["text"] for r in exported)
    requests = Counter(r.get("request_id") for r in exported)
    target = rows // LABELS * LABELS
    missing_completions = sum(len(keys - final) for keys in before_kill)
    return {
        "requests_sent": stats.get("requests", 0),
        "rows_exported": len(exported),
        "duplicates": sum(n - 1 for n in texts.values()) + sum(n - 1 for n in requests.values()),
        "lost_rows": max(0, target - len(exported)) + missing_completions,
        "answers_paid_twice_after_kill_9": paid_twice,
        "faults": {k: stats.get(k, 0) for k in (*FAULTS, "huge_abandoned")},
        "runs": runs, "seconds": round(time.perf_counter() - started, 1),
        "folder": str(folder),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows = successful requests")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 + resume cycles")
    parser.add_argument("--retry-after-max", type=float, default=30.0,
                        help="the server's Retry-After is drawn up to this")
    parser.add_argument("--max-retry-after", type=float, default=2.0,
                        help="the recipe's cap (backend.options.max_retry_after)")
    parser.add_argument("--latency", type=float, default=0.02, help="median answer time, s")
    parser.add_argument("--limit", type=float, default=900.0, help="seconds per run at most")
    args = parser.parse_args()
    result = soak(args.rows, args.kills, args.retry_after_max, args.max_retry_after,
                  args.latency, args.limit)
    for key in ("requests_sent", "rows_exported", "duplicates", "lost_rows",
                "answers_paid_twice_after_kill_9", "seconds"):
        print(f"{key:>32}: {result[key]}")
    print(f"{'faults':>32}: {json.dumps(result['faults'])}")
    for run in result["runs"]:
        print(f"{'run':>32}: {json.dumps(run)}")
    ok = result["duplicates"] == 0 and result["lost_rows"] == 0 and \
        result["rows_exported"] == args.rows // LABELS * LABELS
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

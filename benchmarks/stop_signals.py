"""Paid answers lost when a running ``textsynth run`` gets a signal, and the resume after it.

A ``textsynth run`` process (10 labels x 40 rows, one row a request, 32 requests at once)
sends to a :class:`~textsynth.testing.FaultServer` on 127.0.0.1 that answers in 500 ms, in a
process of its own. After a random 2-5 s the run gets the signal; the script prints how it
ended (exit status, seconds after the signal, its last line), how many requests the
server answered and how many of them the run's store holds (the difference: answers paid
for and lost), then resumes the run against a fresh server and prints what it sent and
whether its rows are those of an uninterrupted run with the same seed.

    python benchmarks/stop_signals.py                       # SIGTERM, SIGINT, SIGKILL, 3 each
    python benchmarks/stop_signals.py --signal SIGTERM --trials 5
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABELS, PER_LABEL, CONCURRENCY, LATENCY = 10, 40, 32, 0.5


def _server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "textsynth.testing", f"--latency={LATENCY}",
                             "--lifetime=600"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _served(proc: subprocess.Popen[str]) -> int:
    """Stop the server; the requests it answered (its last line of JSON stats)."""
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    stats = [line for line in out.splitlines() if line.startswith("{")]
    return int(json.loads(stats[-1])["requests"]) if stats else 0


def _recipe(folder: Path, url: str, name: str) -> Path:
    labels = ", ".join(f"l{i}: label number {i}" for i in range(LABELS))
    path = folder / f"{name}.yaml"
    path.write_text(f"""name: {name}
labels: {{{labels}}}
per_label: {PER_LABEL}
generation: {{examples_per_request: 1}}
backend: {{type: openai, options: {{base_url: "{url}", model: m, api_key: k,
  concurrency: {CONCURRENCY}}}}}
export: {{dir: {folder / name}}}
quality: {{language_id: false, novelty: false, semantic: false, classifier: false,
  request: false}}
""")
    return path


def _cli(recipe: Path) -> list[str]:
    return [sys.executable, "-m", "textsynth", "run", str(recipe), "--quiet"]


def _rows(folder: Path) -> list[str]:
    return sorted(line for f in folder.glob("*.jsonl") for line in f.read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signal", action="append", choices=["SIGTERM", "SIGINT", "SIGKILL"],
                        help="the signal to send (repeatable; default: all three)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="of the moments the signal is sent")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"textsynth run: {LABELS} labels x {PER_LABEL} rows, {CONCURRENCY} requests at once, "
          f"answers in {LATENCY * 1000:.0f} ms; a signal after 2-5 s, then the same command "
          "again")
    with tempfile.TemporaryDirectory(prefix="textsynth-signals-") as tmp:
        folder = Path(tmp)
        server, url = _server()
        subprocess.run(_cli(_recipe(folder, url, "reference")), check=True,
                       capture_output=True)
        _served(server)
        reference = _rows(folder / "reference")
        print(f"{'signal':<8} {'exit':>4} {'stopped':>7} {'answered':>8} {'stored':>6} "
              f"{'lost':>4} {'resume sent':>11} {'same rows':>9}  last line")
        for name in args.signal or ["SIGTERM", "SIGINT", "SIGKILL"]:
            for trial in range(args.trials):
                run = f"run-{name}-{trial}"
                server, url = _server()
                proc = subprocess.Popen(_cli(_recipe(folder, url, run)), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                time.sleep(rng.uniform(2.0, 5.0))
                proc.send_signal(getattr(signal, name))
                sent_at = time.monotonic()
                out, _ = proc.communicate(timeout=60)
                took = time.monotonic() - sent_at
                answered = _served(server)
                with sqlite3.connect(folder / run / "textsynth.db") as db:
                    stored = int(db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
                server, url = _server()
                again = subprocess.run(_cli(_recipe(folder, url, run)), capture_output=True,
                                       text=True, check=False)
                resent = _served(server)
                same = again.returncode == 0 and _rows(folder / run) == reference
                last = out.strip().splitlines()[-1] if out.strip() else ""
                print(f"{name:<8} {proc.returncode:>4} {took:>6.1f}s {answered:>8} "
                      f"{stored:>6} {answered - stored:>4} {resent:>11} "
                      f"{'yes' if same else 'NO':>9}  {last[:40]}", flush=True)
    print("lost: answers the server sent that the store lacks (paid for, asked again on resume)")


if __name__ == "__main__":
    main()

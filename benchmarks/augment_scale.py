"""Translate at scale on the fake backend: the engine's cost per source row.

    python benchmarks/augment_scale.py                  # 1,000, 3,000 and 10,000 rows
    python benchmarks/augment_scale.py --rows 30000

A translate run has one quota per source row and target language, so its engine loop
sees thousands of quotas where a recipe has a few dozen. The fake backend answers at
once; every fifth request comes back untranslated, so that row is asked again. The
quality rules that load models are off (the gate's cost is measured in ``scale.py``).
Per size: requests, rows accepted, CPU seconds of the process and CPU microseconds per
request. If the engine scales linearly, the last figure stays flat as the rows grow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
from textsynth import FakeBackend
from textsynth.augment import translate

def handler(request):
    text = request.messages[-1]["content"].split("English: ")[-1].split("\\n")[0]
    if request.seed % 5 == 0:
        return text  # untranslated: rejected, asked again
    return "Bitte " + text.replace("Play", "spiel") + " jetzt"

rows = int(sys.argv[1])
tmp = Path(tempfile.mkdtemp(dir="."))
src = tmp / "src.jsonl"
src.write_text("".join(json.dumps({"text": f"Play song {i} by [artist {i % 7}](artist)",
                                   "label": f"L{i % 4}"}) + "\\n" for i in range(rows)))
before = resource.getrusage(resource.RUSAGE_SELF)
fake = FakeBackend(handler=handler)
result = translate(src, ["de"], tmp / "out", backend=fake, quality={"language_id": False})
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"rows": rows, "requests": len(fake.requests),
                  "accepted": result.accepted, "cpu_s": cpu}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 3_000, 10_000])
    args = parser.parse_args()
    print(f"{'rows':>7} {'requests':>9} {'accepted':>9} {'CPU s':>7} {'us/request':>11}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's textsynth
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:  # each size in a fresh process
            proc = subprocess.run([sys.executable, "-c", _CHILD, str(rows)], cwd=tmp,
                                  capture_output=True, text=True, check=True, env=env)
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        per = figures["cpu_s"] / figures["requests"] * 1e6
        print(f"{rows:>7,} {figures['requests']:>9,} {figures['accepted']:>9,} "
              f"{figures['cpu_s']:>7.2f} {per:>11.0f}")


if __name__ == "__main__":
    main()

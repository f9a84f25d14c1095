"""Time and peak memory of ``textsynth preview`` on a recipe with many labels.

    python benchmarks/preview_scale.py                      # 10,000 labels, 1 KB descriptions
    python benchmarks/preview_scale.py --labels 1000 --description-bytes 30000

The recipe is written to a temporary folder and ``python -m textsynth preview`` runs
in a fresh process, so the figures are the whole command: start-up, recipe loading,
planning and rendering. Targets: under 500 MB peak memory and under 10 s.

A second fresh process measures what ``textsynth run`` does before its first request:
load the recipe, build the engine and its quality rules, and render the first prompt of
every label (``Engine.check``). Both must grow linearly with the number of labels.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_recipe(folder: Path, labels: int, description_bytes: int) -> Path:
    words = "turn the kitchen lights on when somebody asks politely and also dim them "
    body = (words * (description_bytes // len(words) + 1))[:description_bytes]
    recipe = {
        "name": "preview-scale",
        "description": "requests to a voice assistant",
        "per_label": 10,
        "labels": {f"intent_{i:05d}": f"{i} {body}" for i in range(labels)},
        "vary": {"speaker": ["a parent", "a teenager"], "style": ["short", "polite"]},
        "backend": {"type": "fake"},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


STARTUP = """
import sys
from textsynth.engine import Engine
from textsynth.recipe import load_recipe
from textsynth.store import Store
Engine(load_recipe(sys.argv[1]), store=Store(":memory:")).check()
"""


def measure(args: list[str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one fresh Python process, and its
    exit code. On a busy machine the CPU seconds are the steadier figure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    script = ("import resource, runpy, sys\n"
              "target = sys.argv.pop(1)\n"
              "run = runpy.run_path if target.endswith('.py') else runpy.run_module\n"
              "try:\n    run(target, run_name='__main__')\n"
              "finally:\n    use = resource.getrusage(resource.RUSAGE_SELF)\n"
              "    print(use.ru_maxrss, use.ru_utime + use.ru_stime, file=sys.stderr)\n")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    try:
        rss, cpu = lines[-1].split()
        peak, cpu_seconds = int(rss) / 1024, float(cpu)
    except (IndexError, ValueError):
        peak = cpu_seconds = float("nan")
    if proc.returncode and len(lines) > 1:
        print(lines[-2], file=sys.stderr)
    return seconds, cpu_seconds, peak, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--description-bytes", type=int, default=1_000)
    parser.add_argument("-n", type=int, default=5, help="prompts to preview")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = write_recipe(Path(tmp), args.labels, args.description_bytes)
        size = recipe.stat().st_size / 1e6
        seconds, cpu, peak, code = measure(["textsynth", "preview", str(recipe), "-n",
                                            str(args.n)])
        status = "ok" if code == 0 else f"exit {code}"
        print(f"labels={args.labels} description={args.description_bytes} B recipe={size:.1f} "
              f"MB preview -n {args.n}: {seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB "
              f"({status}; targets: < 10 s, < 500 MB)")
        startup = Path(tmp) / "startup.py"
        startup.write_text(STARTUP, encoding="utf-8")
        seconds, cpu, peak, code = measure([str(startup), str(recipe)])
        status = "ok" if code == 0 else f"exit {code}"
        print(f"run start-up (engine, quality rules, first prompt of every label): "
              f"{seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MiB ({status})")


if __name__ == "__main__":
    main()

"""Time and peak memory of ``textsynth preview`` on a recipe with many labels.

    python benchmarks/preview_scale.py                      # 10,000 labels, 1 KB descriptions
    python benchmarks/preview_scale.py --labels 1000 --description-bytes 1000000

The recipe is written to a temporary folder and ``python -m textsynth preview`` runs
in a fresh process, so the figures are the whole command: start-up, recipe loading,
planning and rendering. Targets: under 500 MB peak memory and under 10 s.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def measure(recipe: Path, n: int) -> tuple[float, float, int]:
    """Seconds, peak RSS (MiB) of the child, and its exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "textsynth", "preview", str(recipe), "-n",
                           str(n)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode:
        print(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "",
              file=sys.stderr)
    return seconds, peak, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--description-bytes", type=int, default=1_000)
    parser.add_argument("-n", type=int, default=5, help="prompts to preview")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = write_recipe(Path(tmp), args.labels, args.description_bytes)
        size = recipe.stat().st_size / 1e6
        seconds, peak, code = measure(recipe, args.n)
    status = "ok" if code == 0 else f"exit {code}"
    print(f"labels={args.labels} description={args.description_bytes} B recipe={size:.1f} MB "
          f"preview -n {args.n}: {seconds:.2f} s, peak {peak:.0f} MiB ({status}; "
          "targets: < 10 s, < 500 MB)")


if __name__ == "__main__":
    main()

"""How busy the openvino engine is during a run: sequences decoding, step by step.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/local_occupancy.py [run options ...]
    python benchmarks/local_occupancy.py --set backend.options.concurrency=64 --per-label 15

Runs ``textsynth run examples/smart_home_intents.yaml`` in this process (any further
arguments are passed on, e.g. ``--set backend.options.batch_size=8``) into a temporary
folder, records every engine step (when, how long, how many sequences it decoded) and
prints: seconds before the first step, the stepping time with fewer than 3/4 of
``max_num_seqs`` decoding, the mean number of sequences, the engine's activity over ten
slices of the run, the process's CPU seconds (user + sys: less sensitive to other jobs
than wall time) and the load average before and after. On a shared machine compare
runs made in the same time window.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's textsynth, not an installed one


def main() -> None:
    from textsynth import cli
    from textsynth.backends import openvino

    start = time.perf_counter()
    steps: list[tuple[float, float, int]] = []  # (start, seconds, sequences)
    step = openvino._StepLoop._step

    def timed_step(self: Any, active: dict[int, Any]) -> None:
        t, n = time.perf_counter(), len(active)
        step(self, active)
        steps.append((t - start, time.perf_counter() - t, n))

    openvino._StepLoop._step = timed_step  # type: ignore[method-assign]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as out:
        args = sys.argv[1:]
        sys.argv = ["textsynth", "run", str(ROOT / "examples" / "smart_home_intents.yaml"),
                    "--out", out, "--quiet", *args]
        try:
            cli.main()
        except SystemExit as exc:
            if exc.code:
                print(f"the run exited with {exc.code}")
    end = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    if not steps:
        print("the engine made no step (everything came from the store?)")
        return
    busy = sum(d for _, d, _ in steps)
    top = max(n for *_, n in steps)
    low = sum(d for _, d, n in steps if n < 0.75 * top)
    mean = sum(n * d for _, d, n in steps) / busy
    print(f"run {end:.1f} s; first engine step at {steps[0][0]:.1f} s, last at "
          f"{steps[-1][0]:.1f} s; {len(steps)} steps, {busy:.1f} s stepping")
    print(f"sequences: at most {top}, mean {mean:.1f} (time-weighted); "
          f"{low:.1f} s ({low / busy:.0%}) of stepping with fewer than {0.75 * top:.0f}")
    first, span = steps[0][0], max(1e-9, steps[-1][0] - steps[0][0])
    slices: list[list[int]] = [[] for _ in range(10)]
    for t, _, n in steps:
        slices[min(9, int((t - first) / span * 10))].append(n)
    print("mean sequences in each tenth of the generation: "
          + " ".join(str(round(sum(s) / len(s))) if s else "-" for s in slices))
    print(f"CPU {usage.ru_utime + usage.ru_stime:.1f} s (user {usage.ru_utime:.1f}, "
          f"sys {usage.ru_stime:.1f}); load average {' '.join(load_before)} before, "
          f"{' '.join(load_after)} after")


if __name__ == "__main__":
    main()

"""Oversample, then keep the best: would choosing a label's rows after the fact help?

    python benchmarks/snips_quality.py --set per_label=100 \\
        --set generation.max_attempts=700 --out output/snips-100
    python benchmarks/choose_rows.py output/snips-100/full --keep 50          # SNIPS figures
    python benchmarks/readme_example.py --set seed=0 --set per_label=60 \\
        --set generation.max_attempts=700 --out output/readme-60
    python benchmarks/choose_rows.py output/readme-60 --keep 30 --read 40    # rows to read

Reads a finished run's accepted rows (its store, in the order they were accepted) and
keeps ``--keep`` of each label's rows in several ways:

- ``arrival``: the first ones (what a run with that quota keeps);
- ``random``: at random (five draws with ``--snips``, one otherwise);
- ``spread``: k-center on MiniLM embeddings (each next row the farthest from those kept);
- ``coverage``: facility location (rows whose neighbours are best represented);
- ``crowded``: the most candidates of the label (rejected repeats counted) at MiniLM
  cosine 0.8 or more (``density@0.8`` of ``benchmarks/row_scores.py``);
- ``nearest``: the highest mean cosine with their five nearest candidates (``top5``);
- ``central``: the closest to the label's centroid.

With ``--snips`` (the default for a run whose labels are SNIPS intents) it prints TSTR
(TF-IDF on the real test set) and real-judge fidelity of each choice; with ``--read N`` it
prints the N-row samples of the choices mixed together, for a reader to judge blind, and
writes which sample holds which row next to the run (``choices.json``).
``docs/quality.md`` ("Choosing rows after the fact") has the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from row_scores import density_scores
from run_figures import shared_eval

SNIPS = shared_eval("snips")


def choices(by_label: dict[str, list[str]], vectors: dict[str, Any],
            scores: dict[str, dict[str, Any]], keep: int) -> dict[str, Callable[[str], list[str]]]:
    """Per way of choosing: a label -> the ``keep`` rows it keeps, in arrival order."""
    import numpy as np

    def arrival(label: str) -> list[str]:
        return by_label[label][:keep]

    def spread(label: str) -> list[str]:
        x = vectors[label]
        kept, far = [0], 1 - x @ x[0]
        while len(kept) < min(keep, len(x)):
            i = int(far.argmax())
            kept.append(i)
            far = np.minimum(far, 1 - x @ x[i])
        return [by_label[label][i] for i in sorted(kept)]

    def coverage(label: str) -> list[str]:
        sims = np.clip(vectors[label] @ vectors[label].T, 0, None)
        best, kept = np.zeros(len(sims)), list[int]()
        for _ in range(min(keep, len(sims))):
            gains = np.maximum(sims, best[None, :]).sum(axis=1) - best.sum()
            gains[kept] = -1
            i = int(gains.argmax())
            kept.append(i)
            best = np.maximum(best, sims[i])
        return [by_label[label][i] for i in sorted(kept)]

    def top(scores: Any, label: str) -> list[str]:
        return [by_label[label][i] for i in sorted(np.argsort(-scores)[:keep])]

    return {
        "arrival": arrival, "spread": spread, "coverage": coverage,
        "crowded": lambda label: top(scores["density@0.8"][label], label),
        "nearest": lambda label: top(scores["top5"][label], label),
        "central": lambda label: top(vectors[label] @ vectors[label].mean(axis=0), label),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished run's folder (its textsynth.db)")
    parser.add_argument("--keep", type=int, default=50, help="rows to keep per label")
    parser.add_argument("--read", type=int, default=0, metavar="N",
                        help="print N-row samples of each choice, mixed, to read blind")
    parser.add_argument("--snips", type=Path, default=SNIPS,
                        help="folder with train.jsonl, test.jsonl and labels.json")
    args = parser.parse_args()

    import numpy as np

    from textsynth.embeddings import Embedder
    from textsynth.store import Store

    with Store.in_dir(args.folder) as store:
        rows = [(e.label, e.text) for e in store.examples()]
        candidates = Counter((r["label"], r["text"]) for r in store.rejects())
    candidates.update(rows)
    by_label: dict[str, list[str]] = defaultdict(list)
    for label, text in rows:
        by_label[label].append(text)
    print(f"{len(rows)} rows: " + ", ".join(f"{k} {len(v)}" for k, v in by_label.items()))
    embed = Embedder()
    vectors = {label: embed.encode(texts) for label, texts in by_label.items()}
    scores: dict[str, dict[str, Any]] = {}
    for name, values in density_scores(rows, candidates).items():
        per_label: dict[str, list[float]] = defaultdict(list)
        for (label, _), value in zip(rows, values, strict=True):
            per_label[label].append(value)
        scores[name] = {label: np.array(v) for label, v in per_label.items()}
    picks = choices(by_label, vectors, scores, args.keep)
    draws = 5 if not args.read else 1
    sets: dict[str, list[tuple[str, str]]] = {
        name: [(label, t) for label in by_label for t in pick(label)]
        for name, pick in picks.items()}
    for draw in range(draws):
        rng = random.Random(draw)
        sets[f"random{draw}"] = [(label, t) for label, texts in by_label.items()
                                 for t in rng.sample(texts, min(args.keep, len(texts)))]
    if args.read:
        read_blind(args.folder, sets, args.read)
    else:
        snips_figures(sets)


def snips_figures(sets: dict[str, list[tuple[str, str]]]) -> None:
    from textsynth.evaluation import evaluate
    from textsynth.fidelity import RealJudge
    from textsynth.sources import LabeledSet

    judge = RealJudge(SNIPS / "train.jsonl", embeddings=False)
    print(f"{'kept by':<10} {'rows':>5} {'TSTR':>7} {'fidelity':>9}")
    randoms: list[tuple[float, float]] = []
    for name, pairs in sets.items():
        data = LabeledSet.from_pairs(((t, label) for label, t in pairs), name)
        tstr = evaluate(data, SNIPS / "test.jsonl", label_names=SNIPS / "labels.json",
                        embeddings=False).accuracy
        fidelity = judge.score(data).fidelity
        if name.startswith("random"):
            randoms.append((tstr, fidelity))
            continue
        print(f"{name:<10} {len(pairs):>5} {tstr:>7.1%} {fidelity:>9.1%}", flush=True)
    tstrs = [t for t, _ in randoms]
    print(f"{'random':<10} {len(sets['random0']):>5} {statistics.mean(tstrs):>7.1%} "
          f"{statistics.mean(f for _, f in randoms):>9.1%}  ({len(randoms)} draws, TSTR "
          f"{min(tstrs):.1%}-{max(tstrs):.1%})")


def read_blind(folder: Path, sets: dict[str, list[tuple[str, str]]], n: int) -> None:
    samples = {name: random.Random(0).sample(pairs, min(n, len(pairs)))
               for name, pairs in sets.items()}
    pool = sorted({row for sample in samples.values() for row in sample})
    random.Random(1).shuffle(pool)
    (folder / "choices.json").write_text(json.dumps(
        {"samples": samples, "pool": pool}, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(pool)} rows from {len(samples)} samples of {n}, mixed (which sample holds "
          f"which row: {folder / 'choices.json'}); count the natural requests of their label:")
    for i, (label, text) in enumerate(pool):
        print(f"{i:4d} [{label}] {text}")


if __name__ == "__main__":
    main()

"""The README's first example: is the smart-home set one a user would keep?

    python benchmarks/readme_example.py                          # build it, print figures
    python benchmarks/readme_example.py --reuse output/smart-home-intents   # no generation

Builds ``examples/smart_home_intents.yaml`` (6 intents x 30, embedded model, the
recipe's defaults) and prints:

- fidelity: the share of accepted rows that a judge trained on a hand-written reference
  set (``benchmarks/data/smart_home_reference.jsonl``: 25 natural requests per label)
  puts under their own label, per label, and the rows it disagrees with;
- tokens per accepted row and the acceptance rate;
- 40 accepted rows drawn at random (fixed seed) for a reader to count how many are
  natural requests of their label (the issue's target: at least 36 of 40).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from run_figures import ROOT, generate, recipe_with, reuse, write_json

REFERENCE = ROOT / "benchmarks" / "data" / "smart_home_reference.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "smart_home_intents.yaml"))
    parser.add_argument("--out", default=str(ROOT / "output" / "readme-example"))
    parser.add_argument("--reuse", type=Path, help="a finished run's folder: no generation")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=YAML", help="recipe change, e.g. generation.temperature=0.7")
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help="real labeled rows to train the judge on")
    parser.add_argument("--sample", type=int, default=40, help="rows to print for a reader")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--no-embeddings", action="store_true", help="TF-IDF judge only")
    parser.add_argument("--worst", type=int, default=15)
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()

    from textsynth.fidelity import RealJudge
    from textsynth.sources import load_labeled

    run = reuse(args.reuse) if args.reuse else generate(
        recipe_with(args.recipe, Path(args.out), args.settings))
    print(f"run: {run.line()}")
    judge = RealJudge(args.reference, embeddings=False if args.no_embeddings else None)
    fid = judge.score(run.data)
    held = ", ".join(f"{k} {v:.1%}" for k, v in judge.heldout_accuracy.items())
    print(f"fidelity: {fid.fidelity:.1%} ({fid.agreed} of {fid.rows}; judge: {judge.classifier} "
          f"on {judge.size} hand-written rows, held-out accuracy {held})")
    for label, share in fid.per_label.items():
        print(f"  {label:<16} {share:>6.1%}")
    print(f"rows the judge puts elsewhere (worst {min(args.worst, len(fid.disagreements))} of "
          f"{len(fid.disagreements)}):")
    for d in fid.disagreements[:args.worst]:
        print(f"  {d.label} -> {d.predicted} ({d.confidence:.0%}): {d.text}")
    data = load_labeled(run.data)
    rows = sorted(zip(data.labels, data.texts, strict=True))
    sample = random.Random(args.seed).sample(rows, min(args.sample, len(rows)))
    print(f"\n{len(sample)} random rows (seed {args.seed}): count the natural requests of "
          "their label")
    for i, (label, text) in enumerate(sample, 1):
        print(f"{i:>3}. [{label}] {text}")
    write_json(args.json, {
        "rows": run.rows, "candidates": run.candidates, "acceptance": run.acceptance,
        "tokens": run.tokens, "tokens_per_row": run.tokens_per_row,
        "fidelity": fid.fidelity, "fidelity_per_label": fid.per_label,
        "judge": {"classifier": judge.classifier, "heldout_accuracy": judge.heldout_accuracy},
        "disagreements": [[d.label, d.predicted, d.confidence, d.text]
                          for d in fid.disagreements],
        "sample": [[label, text] for label, text in sample],
    })


if __name__ == "__main__":
    main()

"""What an end-of-run classifier audit would withdraw from a finished SNIPS run.

    python benchmarks/audit_replay.py output/snips-quality/full
    python benchmarks/audit_replay.py output/snips-quality/full --folds 5 --confidence 0.4 0.5

Reads the accepted rows of a run's store (in the order they were accepted), judges each
with a logistic regression over MiniLM embeddings fitted on the label prototypes and the
rows of the other folds (``textsynth.quality.classifier.cross_fitted``, what
``quality.classifier.audit`` runs), and prints, per setting: the rows withdrawn, the
share of them the real-data judge (trained on the real SNIPS training set) also puts
under another label (precision), and the fidelity and TSTR of the rows that stay. No
generation: the rows a real run would add to top the labels up again are not here, so
TSTR is on fewer rows than the run's.

Settings: ``other>=P`` withdraws a row that another label gets with probability P or
more (the audit); ``own<P`` one whose own label gets less than P (pointwise
V-information with balanced classes ranks rows the same way: log p(y|x) minus a constant).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from run_figures import ROOT, shared_eval

SNIPS = shared_eval("snips")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run's folder (its textsynth.db)")
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "snips_zero_shot.yaml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--confidence", type=float, nargs="*", default=[0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--own", type=float, nargs="*", default=[0.2, 0.3, 0.4])
    parser.add_argument("--request", type=float, nargs="*", default=[0.2, 0.3, 0.5],
                        help="request-filter thresholds to compare")
    parser.add_argument("--prototype", type=float, nargs="*", default=[0.2, 0.3, 0.4],
                        help="cosine with the row's own label prototype below which it goes")
    parser.add_argument("--rounds", type=int, default=1, help="audit rounds per setting")
    parser.add_argument("--show", type=int, default=0, help="withdrawn rows to print")
    args = parser.parse_args()

    from textsynth.evaluation import evaluate
    from textsynth.fidelity import RealJudge
    from textsynth.quality.classifier import cross_fitted, label_prototypes
    from textsynth.quality.semantic import Embedder
    from textsynth.recipe import load_recipe
    from textsynth.sources import LabeledSet
    from textsynth.store import Store

    recipe = load_recipe(args.recipe)
    base = label_prototypes({n: s.description for n, s in recipe.labels.items()})
    with Store.in_dir(args.folder) as store:
        rows = [(e.text, e.label) for e in store.examples()]
    judge = RealJudge(SNIPS / "train.jsonl", embeddings=False)
    wrong = {(d.text, d.label) for d in judge.score(LabeledSet.from_pairs(rows)).disagreements}
    embedder = Embedder()

    def figures(name: str, kept: list[tuple[str, str]], out: list[tuple[str, str]]) -> None:
        bad_kept = sum(r in wrong for r in kept)
        hit = sum(r in wrong for r in out)
        ev = evaluate(LabeledSet.from_pairs(kept), SNIPS / "test.jsonl",
                      label_names=SNIPS / "labels.json", embeddings=False)
        prec = f"{hit / len(out):.0%}" if out else "-"
        print(f"{name:<14} {len(kept):>5} {len(out):>5} {prec:>6} "
              f"{1 - bad_kept / len(kept):>8.1%} {ev.accuracy:>7.1%}", flush=True)

    print(f"{len(rows)} accepted rows; the real judge disagrees with {len(wrong)} "
          f"(fidelity {1 - len(wrong) / len(rows):.1%})")
    print(f"{'setting':<14} {'kept':>5} {'out':>5} {'prec':>6} {'fidelity':>8} {'TSTR':>7}")
    figures("none", rows, [])
    settings = [(f"other>={c}", "other", c) for c in args.confidence] + \
               [(f"own<{u}", "own", u) for u in args.own]
    for name, kind, value in settings:
        kept, out = list(rows), []
        for _ in range(args.rounds):
            probs, classes = cross_fitted(base, kept, embedder, args.folds)
            now = []
            for (text, label), p in zip(kept, probs, strict=True):
                own = float(p[classes.index(label)])
                other = int(p.argmax())
                if (kind == "other" and classes[other] != label and float(p[other]) >= value) \
                        or (kind == "own" and own < value):
                    now.append((text, label))
            if not now:
                break
            out += now
            gone = set(now)
            kept = [r for r in kept if r not in gone]
        figures(name, kept, out)
        for text, label in out[:args.show]:
            print(f"    {'x' if (text, label) in wrong else ' '} {label}: {text}")

    # filters of one row at a time, for comparison: the request filter, the closest label
    # prototype (what the classifier decides by in its warm-up), the own prototype's cosine
    import asyncio

    from textsynth.example import Example
    from textsynth.quality.request import RequestFilter

    request = RequestFilter(embedder)
    examples = [Example(text=t, label=lab, language="en") for t, lab in rows]
    asyncio.run(request.prepare(examples))
    x = embedder.encode([t for t, _ in rows])
    protos = embedder.encode([t for t, _ in base])
    names = [n for _, n in base]
    sims = x @ protos.T
    rules: list[tuple[str, list[bool]]] = []
    for threshold in args.request:
        request.min_probability = threshold
        rules.append((f"request<{threshold}", [not request.check(e).keep for e in examples]))
    nearest = [names[int(s_.argmax())] != lab for s_, (_, lab) in zip(sims, rows, strict=True)]
    rules.append(("proto-nearest", nearest))
    own_sim = [float(s_[names.index(lab)]) for s_, (_, lab) in zip(sims, rows, strict=True)]
    for threshold in args.prototype:
        rules.append((f"proto<{threshold}", [v < threshold for v in own_sim]))
    for threshold in args.request[1:2]:
        request.min_probability = threshold
        both = [a or b for a, b in zip(nearest, [not request.check(e).keep for e in examples],
                                        strict=True)]
        rules.append((f"nearest+req{threshold}", both))
    for name, drop in rules:
        out = [r for r, d in zip(rows, drop, strict=True) if d]
        figures(name, [r for r, d in zip(rows, drop, strict=True) if not d], out)
        for text, label in out[:args.show]:
            print(f"    {'x' if (text, label) in wrong else ' '} {label}: {text}")


if __name__ == "__main__":
    main()

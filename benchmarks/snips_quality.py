"""SNIPS zero-shot: fidelity, TSTR and tokens per accepted row of a synthetic SNIPS set.

    python benchmarks/snips_quality.py                      # build the recipe, print figures
    python benchmarks/snips_quality.py --reuse output/snips-zero-shot   # no generation
    python benchmarks/snips_quality.py --set generation.temperature=0.6 --out output/t06
    python benchmarks/snips_quality.py --ablations          # + one rule off at a time

Builds ``examples/snips_zero_shot.yaml`` (7 intents x 50, label names and descriptions
only, no real example) and prints, for the run and each variant:

- fidelity: the share of accepted rows that a judge trained on the full real SNIPS
  training set (``../shared/eval/snips/train.jsonl``, 13,084 rows; judging only) puts
  under their own label (``textsynth.fidelity``; the judge is trained once);
- TSTR: accuracy (and macro-F1) on the real test set (700 rows) of TF-IDF + logistic
  regression trained on the accepted rows, next to the label names alone (55.7%);
- tokens per accepted row and the acceptance rate.

``--set key.sub=YAML`` changes the recipe (repeatable). Each ablation re-runs the engine
on a copy of the main run's store: a completion whose request is unchanged is read from
the store, so a rule change costs no generation, and a prompt change only what differs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from run_figures import ROOT, RunFigures, generate, recipe_with, reuse, shared_eval, write_json

SNIPS = shared_eval("snips")

# quality overrides per variant: one rule off at a time, then all of them
ABLATIONS: dict[str, list[str]] = {
    "- label consistency": ["quality.label_consistency=null"],
    "- meta-text filter": ["quality.assistant_speak=false"],
    "- language id": ["quality.language_id=null"],
    "- near-dup (MinHash)": ["quality.near_duplicates=null"],
    "- ROUGE-L novelty": ["quality.novelty=null"],
    "- semantic dedup": ["quality.semantic=null"],
    "- conflict withdrawal": ["quality.withdraw_conflicts=false"],
    "- all dedup and novelty": ["quality.exact_dedup=false", "quality.near_duplicates=null",
                                "quality.novelty=null", "quality.semantic=null"],
    "no rules (exact dedup only)": [
        "quality.label_consistency=null", "quality.assistant_speak=false",
        "quality.language_id=null", "quality.near_duplicates=null", "quality.novelty=null",
        "quality.semantic=null", "quality.pii='off'", "quality.withdraw_conflicts=false",
        "quality.form=false", "quality.classifier=false", "quality.seed_leak=false",
        "quality.min_words=1", "quality.max_words=60", "quality.max_chars=400"],
}

# not ablations: settings compared on the same stored completions (--only NAME); a
# setting that rejects more generates what the quotas then lack
SETTINGS: dict[str, list[str]] = {
    "+ audit 0.5": ["quality.classifier.audit=3", "quality.classifier.audit_confidence=0.5"],
    "+ audit 0.6": ["quality.classifier.audit=3", "quality.classifier.audit_confidence=0.6"],
    "classifier unsure 0.4": ["quality.classifier.min_confidence=0.4"],
    "classifier unsure 0.5": ["quality.classifier.min_confidence=0.5"],
    "classifier margin 0": ["quality.classifier.margin=0.0"],
    "label similarity 0.3": ["quality.classifier.min_label_similarity=0.3"],
    "label similarity 0.35": ["quality.classifier.min_label_similarity=0.35"],
    "label similarity 0.4": ["quality.classifier.min_label_similarity=0.4"],
    "label margin 0.1 + similarity 0.3": ["quality.classifier.min_label_margin=0.1",
                                          "quality.classifier.min_label_similarity=0.3"],
    "label margin 0.1": ["quality.classifier.min_label_margin=0.1"],
    "label margin 0.05 + similarity 0.3": ["quality.classifier.min_label_margin=0.05",
                                           "quality.classifier.min_label_similarity=0.3"],
}


def score(name: str, run: RunFigures, judge: Any, test: Path, worst: int) -> dict[str, Any]:
    """Fidelity and TSTR of one run's accepted rows; prints one line, returns the figures."""
    from textsynth.evaluation import evaluate

    figures: dict[str, Any] = {"variant": name, "folder": str(run.folder), "rows": run.rows,
                               "unfinished": run.partial,
                               "candidates": run.candidates, "acceptance": run.acceptance,
                               "tokens": run.tokens, "tokens_per_row": run.tokens_per_row,
                               "sent": run.sent, "cached": run.cached, "short": run.shortfall}
    if not run.rows:
        print(f"{name:<30} no rows accepted")
        return figures
    fid = judge.score(run.data)
    ev = evaluate(run.data, test, label_names=SNIPS / "labels.json", embeddings=False)
    figures.update(fidelity=fid.fidelity, fidelity_per_label=fid.per_label,
                   tstr=ev.accuracy, tstr_macro_f1=ev.macro_f1,
                   names_only=ev.result("label names").accuracy,
                   worst=[[d.label, d.predicted, d.confidence, d.text]
                          for d in fid.disagreements[:worst]])
    print(f"{name:<30} {run.rows:>5} {run.shortfall:>5} {run.acceptance:>7.1%} "
          f"{run.tokens_per_row:>7.1f} {fid.fidelity:>8.1%} {ev.accuracy:>7.1%} "
          f"{ev.macro_f1:>7.1%} {run.sent:>5} {run.cached:>6}  "
          + ", ".join(f"{r} {n}" for r, n in run.rejected.most_common(3)), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "snips_zero_shot.yaml"))
    parser.add_argument("--out", default=str(ROOT / "output" / "snips-quality"),
                        help="folder of the runs (the main run goes to OUT/full)")
    parser.add_argument("--reuse", type=Path, help="a finished run's folder: nothing is "
                        "generated for the main run")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=YAML", help="recipe change, e.g. generation.temperature=0.6")
    parser.add_argument("--per-label", type=int, default=None)
    parser.add_argument("--ablations", action="store_true", help="also run each ablation")
    parser.add_argument("--only", nargs="*", help="run only these ablations or settings "
                        f"(by name; settings: {', '.join(SETTINGS)})")
    parser.add_argument("--no-embeddings", action="store_true",
                        help="TF-IDF judge only (do not try the MiniLM judge)")
    parser.add_argument("--worst", type=int, default=10, help="disagreeing rows to print")
    parser.add_argument("--snips", type=Path, default=SNIPS,
                        help="folder with train.jsonl, test.jsonl and labels.json")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()

    from textsynth.fidelity import RealJudge

    judge = RealJudge(args.snips / "train.jsonl", embeddings=False if args.no_embeddings else None)
    held = ", ".join(f"{k} {v:.1%}" for k, v in judge.heldout_accuracy.items())
    print(f"judge: {judge.classifier} trained on {judge.size} real rows (accuracy on "
          f"{judge.heldout} held-out real rows: {held})", flush=True)
    out = Path(args.out)
    main_run = (reuse(args.reuse) if args.reuse else
                generate(recipe_with(args.recipe, out / "full", args.settings, args.per_label)))
    print(f"main run: {main_run.line()}", flush=True)
    print(f"{'variant':<30} {'rows':>5} {'short':>5} {'accept':>7} {'tok/row':>7} "
          f"{'fidelity':>8} {'TSTR':>7} {'mac-F1':>7} {'sent':>5} {'cached':>6}  top rejects")
    test = args.snips / "test.jsonl"
    results = [score("main run", main_run, judge, test, args.worst)]
    if args.ablations or args.only:
        from textsynth.store import STORE_NAME

        chosen = {k: v for k, v in {**ABLATIONS, **SETTINGS}.items()
                  if k in args.only} if args.only else ABLATIONS
        for name, changes in chosen.items():
            slug = name.strip("-+ ").replace(" ", "_").replace("(", "").replace(")", "")
            recipe = recipe_with(args.recipe, out / slug, args.settings + changes,
                                 args.per_label)
            run = generate(recipe, seed_store=main_run.folder / STORE_NAME)
            results.append(score(name, run, judge, test, args.worst))
    first = results[0]
    if first.get("worst"):
        print(f"\nrows of the main run the judge puts elsewhere (worst {len(first['worst'])}):")
        for label, predicted, confidence, text in first["worst"]:
            print(f"  {label} -> {predicted} ({confidence:.0%}): {text}")
        print(f"names-only baseline (TSTR of the 7 label names): {first['names_only']:.1%}")
    write_json(args.json, {"judge": {"classifier": judge.classifier, "heldout_accuracy":
                                     judge.heldout_accuracy, "rows": judge.size},
                           "runs": results})
    if args.json is None:
        print(json.dumps({k: first.get(k) for k in ("fidelity", "tstr", "tokens_per_row",
                                                     "acceptance")}))


if __name__ == "__main__":
    main()

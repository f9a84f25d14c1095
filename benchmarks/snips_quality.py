"""How good is the data? Train on a synthetic SNIPS set, score on the real test set.

    python benchmarks/snips_quality.py                       # full recipe + ablations
    python benchmarks/snips_quality.py --no-ablations        # the full recipe only

Builds ``examples/snips_zero_shot.yaml`` (label names and descriptions only; no
real example), trains TF-IDF (word 1-2 + char_wb 2-5 grams) + logistic
regression on the accepted utterances, and reports accuracy on
``../shared/eval/snips/test.jsonl``. Each ablation turns one rule off and
re-runs the engine on a copy of the full run's store: prompts do not depend on
what was accepted (``generation.avoid: 0``), so every completion it needs is
already cached, and the variants differ only in which candidates they keep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# ../shared/eval/snips beside the checkout (or beside the folder of worktrees)
SNIPS = next((p / "shared" / "eval" / "snips" for p in (ROOT.parent, ROOT.parent.parent)
              if (p / "shared" / "eval" / "snips").is_dir()), ROOT.parent / "shared")

# quality overrides per variant: one major rule off at a time, then all of them
ABLATIONS: dict[str, dict[str, Any]] = {
    "full recipe": {},
    "- label consistency": {"label_consistency": None},
    "- meta-text filter": {"assistant_speak": False},
    "- language id": {"language_id": None},
    "- near-dup (MinHash)": {"near_duplicates": None},
    "- ROUGE-L novelty": {"novelty": None},
    "- semantic dedup": {"semantic": None},
    "- conflict withdrawal": {"withdraw_conflicts": False},
    "no rules (exact dedup only)": {
        "label_consistency": None, "assistant_speak": False, "language_id": None,
        "near_duplicates": None, "novelty": None, "semantic": None, "pii": "off",
        "withdraw_conflicts": False, "min_words": 1, "max_words": 60, "max_chars": 400},
}


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def accuracy(train: list[tuple[str, str]], test: list[dict[str, Any]]) -> float:
    """TF-IDF word 1-2 + char_wb 2-5 grams, logistic regression; accuracy on ``test``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2))),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))),
    ])
    model = make_pipeline(features, LogisticRegression(max_iter=2000))
    model.fit([t for t, _ in train], [label for _, label in train])
    predicted = model.predict([row["text"] for row in test])
    return float(sum(p == row["label"] for p, row in zip(predicted, test, strict=True))
                 / len(test))


def run_variant(recipe: Any, out: Path, seed_store: Path | None) -> tuple[Any, list]:
    from textsynth.engine import Engine
    from textsynth.store import STORE_NAME, Store

    out.mkdir(parents=True, exist_ok=True)
    if seed_store is not None and seed_store != out / STORE_NAME:
        shutil.copyfile(seed_store, out / STORE_NAME)
    store = Store.in_dir(out)
    engine = Engine(recipe, store=store)
    try:
        result = asyncio.run(engine.run())
    finally:
        asyncio.run(engine.backend.aclose())
    rows = [(e.text, e.label) for e in store.examples()]
    store.close()
    return result, rows


def main() -> None:
    from textsynth.recipe import load_recipe
    from textsynth.store import STORE_NAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "snips_zero_shot.yaml"))
    parser.add_argument("--out", default=str(ROOT / "output" / "snips-quality"))
    parser.add_argument("--per-label", type=int, default=None)
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--only", nargs="*", help="run only these variants (by name)")
    parser.add_argument("--snips", type=Path, default=SNIPS, help="folder with test.jsonl")
    args = parser.parse_args()

    test = load_jsonl(args.snips / "test.jsonl")
    names = json.loads((args.snips / "labels.json").read_text())["labels"]
    base = load_recipe(args.recipe)
    if args.per_label:
        base = base.with_overrides(per_label=args.per_label)
    out = Path(args.out)
    print(f"reference: the 7 label names alone as training data: "
          f"{accuracy([(n['name'], n['label']) for n in names], test):.1%}", flush=True)

    variants = {"full recipe": {}} if args.no_ablations else ABLATIONS
    if args.only:
        variants = {k: v for k, v in ABLATIONS.items() if k in args.only}
    full_store = out / "full" / STORE_NAME
    print(f"{'variant':<30} {'rows':>5} {'short':>5} {'sent':>5} {'cached':>6} {'accuracy':>8}"
          f"  top rejects", flush=True)
    for name, overrides in variants.items():
        data = base.model_dump(by_alias=True)
        data["source"] = base.source
        data["quality"].update(overrides)
        slug = "full" if name == "full recipe" else name.strip("- ").replace(" ", "_")
        data["export"]["dir"] = str(out / slug)
        recipe = load_recipe(data)
        start = time.perf_counter()
        result, rows = run_variant(recipe, out / slug,
                                   full_store if full_store.exists() else None)
        acc = accuracy(rows, test) if rows else 0.0
        top = ", ".join(f"{r} {n}" for r, n in result.rejected.most_common(4))
        short = sum(result.shortfalls.values())
        print(f"{name:<30} {len(rows):>5} {short:>5} {result.sent:>5} {result.cached:>6} "
              f"{acc:>8.1%}  {top}  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

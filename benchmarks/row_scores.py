"""Can a score find the odd rows of a finished run? Language-model likelihood and density.

    python benchmarks/row_scores.py output/readme-example benchmarks/data/readme_odd_rows.txt
    python benchmarks/row_scores.py output/readme-example ODD --model gemma3-270m

Reads the accepted rows of a run of ``examples/smart_home_intents.yaml`` (its store) and
a reader's list of the rows that are not natural requests of their label (one text a
line; ``benchmarks/data/readme_odd_rows.txt`` is one reader's list for the README
example's seed-0 run), scores every row, and prints the ROC AUC with which each score
puts the odd rows below the natural ones (0.5: no better than chance; 1: every odd row
below every natural one), and the rows each label's best score ranks lowest:

- ``cond``: mean log-probability of the row's tokens under a causal model (the embedded
  SmolLM2-135M, or Gemma 3 270M with ``--model gemma3-270m``), given the recipe's
  description and its label's description and six examples as a list to continue;
- ``gen``: the same given the recipe's description only; ``pmi``: ``cond - gen``;
- ``margin``: ``cond`` minus the best ``cond`` under another label's list;
- ``density@T``: how many candidates of the run (accepted or rejected, repeats counted)
  of the same label have a MiniLM cosine of ``T`` or more with the row: the modes a model
  keeps coming back to against the rows it wrote once;
- ``top5``: mean MiniLM cosine with the row's five nearest candidates of its label.

A filter that keeps rows above a threshold of a score can only remove the odd rows its
AUC allows; ``docs/quality.md`` ("Finding the odd rows by a score") has the figures.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from run_figures import ROOT


def lm_scores(model_name: str, recipe: Any, rows: list[tuple[str, str]]
              ) -> dict[str, list[float]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textsynth.backends.transformers import embedded_model_path, gemma_folder
    from textsynth.backends.vllm import plain_model_dir

    if model_name == "gemma3-270m":
        folder, bos = gemma_folder(), True
    else:
        cache = Path.home() / ".cache" / "textsynth" / "models"  # where the vllm backend keeps it
        folder, bos = plain_model_dir(embedded_model_path(), cache), False
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    head = f"{recipe.description[:1].upper()}{recipe.description[1:]}."

    def context(label: str) -> str:
        spec = recipe.labels[label]
        lines = "".join(f"- {e}\n" for e in spec.examples)
        return f"{head} Intent: {spec.description}.\n{lines}- "

    @torch.no_grad()
    def score(prefix: str, texts: list[str]) -> list[float]:
        start = ([tok.bos_token_id] if bos else []) + \
            tok(prefix, add_special_tokens=False)["input_ids"]
        out: list[float] = []
        for i in range(0, len(texts), 32):
            seqs = [start + tok(t + "\n", add_special_tokens=False)["input_ids"]
                    for t in texts[i:i + 32]]
            width = max(map(len, seqs))
            ids = torch.zeros((len(seqs), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, s in enumerate(seqs):
                ids[j, :len(s)] = torch.tensor(s)
                mask[j, :len(s)] = 1
            logp = model(input_ids=ids, attention_mask=mask).logits.log_softmax(-1)
            for j, s in enumerate(seqs):
                got = [logp[j, k - 1, s[k]].item() for k in range(len(start), len(s))]
                out.append(sum(got) / len(got))
        return out

    texts = [t for _, t in rows]
    by_label = {label: score(context(label), texts) for label in recipe.labels}
    gen = score(f"{head}\n- ", texts)
    cond = [by_label[label][i] for i, (label, _) in enumerate(rows)]
    margin = [cond[i] - max(by_label[o][i] for o in recipe.labels if o != label)
              for i, (label, _) in enumerate(rows)]
    return {"cond": cond, "gen": gen, "pmi": [c - g for c, g in zip(cond, gen, strict=True)],
            "margin": margin}


def density_scores(rows: list[tuple[str, str]], candidates: Counter[tuple[str, str]]
                   ) -> dict[str, list[float]]:
    import numpy as np

    from textsynth.embeddings import Embedder

    texts = sorted({t for _, t in candidates} | {t for _, t in rows})
    index = {t: i for i, t in enumerate(texts)}
    vectors = Embedder().encode(texts)
    out: dict[str, list[float]] = {f"density@{t}": [] for t in (0.8, 0.9)}
    out["top5"] = []
    for label, text in rows:
        others = [(t, n) for (lab, t), n in candidates.items() if lab == label and t != text]
        sims = vectors[[index[t] for t, _ in others]] @ vectors[index[text]]
        weights = np.array([n for _, n in others])
        for t in (0.8, 0.9):
            out[f"density@{t}"].append(float(weights[sims >= t].sum()))
        out["top5"].append(float(np.sort(sims)[::-1][:5].mean()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished run's folder (its textsynth.db)")
    parser.add_argument("odd", type=Path, help="the rows a reader found odd, one a line")
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "smart_home_intents.yaml"))
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        choices=["smollm2-135m-instruct", "gemma3-270m"])
    parser.add_argument("--no-lm", action="store_true", help="the MiniLM scores only")
    parser.add_argument("--lowest", type=int, default=5, help="rows to show per label")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from textsynth.recipe import load_recipe
    from textsynth.store import Store

    recipe = load_recipe(args.recipe)
    with Store.in_dir(args.folder) as store:
        rows = [(e.label, e.text) for e in store.examples()]
        candidates = Counter((r["label"], r["text"]) for r in store.rejects())
    candidates.update(rows)
    odd = {line.strip() for line in args.odd.read_text().splitlines() if line.strip()}
    truth = [text in odd for _, text in rows]
    print(f"{len(rows)} rows, {sum(truth)} of them odd by the reader's list; "
          f"{sum(candidates.values())} candidates")
    scores = density_scores(rows, candidates)
    if not args.no_lm:
        scores.update(lm_scores(args.model, recipe, rows))
    print(f"{'score':<12} {'AUC':>6}  (odd rows below natural ones)")
    aucs = {name: float(roc_auc_score(truth, [-v for v in values]))
            for name, values in scores.items()}
    for name, auc in aucs.items():
        print(f"{name:<12} {auc:6.3f}")
    best = max(aucs, key=lambda n: aucs[n])
    print(f"\nthe {args.lowest} lowest rows of each label by {best} (* odd):")
    for label in recipe.labels:
        ranked = sorted((v, t) for (lab, t), v in zip(rows, scores[best], strict=True)
                        if lab == label)
        shown = "; ".join(f"{'*' if t in odd else ''}{t}" for _, t in ranked[:args.lowest])
        print(f"  {label}: {shown}")


if __name__ == "__main__":
    main()

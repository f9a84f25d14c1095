from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk

from textsynth import Completion, FakeBackend, Request
from textsynth.augment import AugmentJobs, paraphrase, translate
from textsynth.errors import BackendUnavailable, DataError, RunInterrupted
from textsynth.result import RunSnapshot, StopReason
from textsynth.store import Store

ROWS = [
    {"text": "Add [Daft Punk](artist) to my [party](playlist) playlist", "label": "AddToPlaylist"},
    {"text": "What is the weather in Paris tomorrow", "label": "GetWeather"},
    {"text": "Play some relaxing jazz music please", "label": "PlayMusic"},
]
WORDS = {"Add": "Füge", "to my": "zu meiner", "playlist": "Playlist hinzu", "What is": "Wie ist",
         "the weather in": "das Wetter in", "tomorrow": "morgen", "Play some": "Spiel etwas",
         "relaxing jazz music please": "entspannten Jazz bitte"}


def _write(tmp_path: Path, rows: list[dict] = ROWS) -> Path:
    path = tmp_path / "source.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _source(request: Request) -> str:
    return request.messages[-1]["content"].split("English: ")[-1].split("\n")[0]


def german(request: Request) -> str:
    """A deterministic 'translator': word swaps that keep the slot markup."""
    text = _source(request)
    for en, de in WORDS.items():
        text = text.replace(en, de)
    return f"German: {text}"


def _rows(out: Path) -> list[dict]:
    ds = load_from_disk(str(out / "dataset"))
    names = ds["train"].features["label"].names
    return [{**r, "label": names[r["label"]]} for split in ds.values() for r in split]


def test_translate_keeps_labels_and_slots_and_records_the_source(tmp_path: Path) -> None:
    fake = FakeBackend(handler=german)
    outcome = translate(_write(tmp_path), ["de"], tmp_path / "out", backend=fake)
    assert outcome.accepted == 3 and outcome.complete
    rows = {r["source_id"]: r for r in _rows(tmp_path / "out")}
    first = rows["row 0"]
    assert first["text"] == "Füge Daft Punk zu meiner party Playlist hinzu"
    assert first["label"] == "AddToPlaylist" and first["language"] == "de"
    assert first["source_text"] == "Add Daft Punk to my party playlist"
    assert first["source_language"] == "en"
    assert [(s["entity"], first["text"][s["start"]:s["end"]]) for s in first["entities"]] == [
        ("artist", "Daft Punk"), ("playlist", "party")]
    assert rows["row 1"]["label"] == "GetWeather"
    # the prompt carried the slot markup and the language names
    prompt = fake.requests[0].messages[-1]["content"]
    assert "[Daft Punk](artist)" in prompt and "German" in prompt
    card = (tmp_path / "out" / "README.md").read_text()
    assert "- de" in card
    with Store.in_dir(tmp_path / "out") as store:  # summed up as a run is
        summary = store.get_meta("summary")
    assert set(summary["quotas"]) == {"AddToPlaylist/de (row 0)", "GetWeather/de (row 1)",
                                      "PlayMusic/de (row 2)"}
    assert summary["quotas"]["GetWeather/de (row 1)"]["stop"] == "quota met"
    assert summary["mode"] == "translate" and "slots" not in summary


SONGS = [{"text": f"Play song number {i} for me", "label": "PlayMusic"} for i in range(3)]
PHRASES = {"German": "Bitte spiel das Lied {n} für mich", "Italian": "Per favore suona la "
           "canzone {n} per me", "Swahili": "Tafadhali cheza wimbo {n} kwa ajili yangu"}


def _polyglot(request: Request) -> str:
    language = request.messages[-1]["content"].strip().rsplit("\n", 1)[-1].rstrip(":")
    return PHRASES[language].format(n=_source(request).split()[3])


def test_one_row_per_source_row_and_language(tmp_path: Path) -> None:
    outcome = translate(_write(tmp_path, SONGS), ["de", "it", "sw"], tmp_path / "out",
                        backend=FakeBackend(handler=_polyglot))
    rows = _rows(tmp_path / "out")
    assert outcome.accepted == 9
    assert sorted((r["source_id"], r["language"]) for r in rows) == sorted(
        (f"row {i}", lang) for i in range(3) for lang in ("de", "it", "sw"))
    assert {r["text"] for r in rows if r["language"] == "sw"} == {
        f"Tafadhali cheza wimbo {i} kwa ajili yangu" for i in range(3)}
    card = (tmp_path / "out" / "README.md").read_text()
    assert all(f"- {code}" in card for code in ("de", "it", "sw"))


def test_wrong_language_answers_are_rejected(tmp_path: Path) -> None:
    def english_for_swahili(request: Request) -> str:
        if "Swahili" in request.messages[-1]["content"]:
            return f"Please play the song {_source(request).split()[3]} for me now"
        return _polyglot(request)

    outcome = translate(_write(tmp_path, SONGS), ["de", "sw"], tmp_path / "out",
                        backend=FakeBackend(handler=english_for_swahili), max_attempts=2)
    assert outcome.stats.rejected["wrong_language"] == 6  # 3 rows x 2 attempts
    assert outcome.accepted == 3 and outcome.stats.shortfalls == {
        f"PlayMusic/sw (row {i})": 1 for i in range(3)}
    assert {r["language"] for r in _rows(tmp_path / "out")} == {"de"}


def test_translating_into_a_language_identification_does_not_know(tmp_path: Path) -> None:
    """Amharic: lingua does not know it, and translate has no quality switch; the rows are
    kept unchecked (German beside them is still checked), where the run used to stop."""
    pytest.importorskip("lingua")
    amharic = {**PHRASES, "Amharic": "እባክህ ዘፈን {n} አጫውትልኝ"}

    def answer(request: Request) -> str:
        language = request.messages[-1]["content"].strip().rsplit("\n", 1)[-1].rstrip(":")
        if language == "German" and _source(request).split()[3] == "0":
            return "Please play the song 0 for me now"  # English: still rejected
        return amharic[language].format(n=_source(request).split()[3])

    outcome = translate(_write(tmp_path, SONGS), ["am", "de"], tmp_path / "out",
                        backend=FakeBackend(handler=answer), max_attempts=1)
    assert outcome.stats.rejected["wrong_language"] == 1
    rows = _rows(tmp_path / "out")
    assert sorted(r["text"] for r in rows if r["language"] == "am") == [
        f"እባክህ ዘፈን {i} አጫውትልኝ" for i in range(3)]
    assert len([r for r in rows if r["language"] == "de"]) == 2


def test_translating_with_the_embedded_model_says_it_writes_english(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="textsynth"):
        AugmentJobs("translate", _write(tmp_path), tmp_path / "out", languages=["de", "it"])
    assert "note: the embedded SmolLM2-135M writes mostly English, and its German and " \
           "Italian will be poor" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="textsynth"):  # a hosted model: nothing to say
        AugmentJobs("translate", _write(tmp_path), tmp_path / "out2", languages=["de"],
                    backend_type="openai",
                    backend_options={"base_url": "http://127.0.0.1:9/v1", "api_key": "x"})
    assert "SmolLM2" not in caplog.text


def test_lost_slot_and_copied_source_are_retried_with_a_new_seed(tmp_path: Path) -> None:
    answers: dict[str, int] = {}

    def flaky(request: Request) -> str:
        src = _source(request)
        answers[src] = answers.get(src, 0) + 1
        if answers[src] == 1:  # first try: slot markup and value gone, or a plain copy
            return "Füge etwas hinzu" if "[" in src else src
        return german(request)

    fake = FakeBackend(handler=flaky)
    outcome = translate(_write(tmp_path), ["de"], tmp_path / "out", backend=fake)
    assert outcome.accepted == 3
    assert outcome.stats.rejected["slot_lost"] == 1
    assert outcome.stats.rejected["untranslated"] == 2
    assert len({r.seed for r in fake.requests}) == 6  # each retry is a new request
    with Store.in_dir(tmp_path / "out") as store:
        reasons = {r["reason"]: r["detail"] for r in store.rejects()}
    assert reasons["slot_lost"] == "artist,playlist"


def test_runaway_output_is_rejected(tmp_path: Path) -> None:
    def loops(request: Request) -> str:
        return "Spiel " + "und noch einmal " * 20 if "jazz" in _source(request) else german(request)

    outcome = translate(_write(tmp_path), ["de"], tmp_path / "out", backend=FakeBackend(
        handler=loops), max_attempts=1)
    assert outcome.stats.rejected["too_long_for_source"] == 1
    assert outcome.stats.shortfalls == {"PlayMusic/de (row 2)": 1}
    assert outcome.stats.stop_reasons == {"PlayMusic/de (row 2)": StopReason.ATTEMPT_LIMIT}


def test_an_answer_cut_off_at_max_tokens_is_rejected_and_asked_again(tmp_path: Path) -> None:
    def cut_first(request: Request) -> Completion:
        text = german(request)
        if request.seed == first_seeds.setdefault(_source(request), request.seed):
            return Completion(texts=[text[:-4]], finish_reason="length")  # cut mid-word
        return Completion(texts=[text])

    first_seeds: dict[str, int] = {}
    outcome = translate(_write(tmp_path, ROWS[1:]), ["de"], tmp_path / "out",
                        backend=FakeBackend(handler=cut_first))
    assert outcome.stats.rejected["parse:truncated"] == 2 and outcome.complete
    assert {r["text"] for r in _rows(tmp_path / "out")} == {
        "Wie ist das Wetter in Paris morgen", "Spiel etwas entspannten Jazz bitte"}


def test_progress_shows_one_line_per_label_as_a_run_does(tmp_path: Path) -> None:
    seen: list[RunSnapshot] = []
    result = translate(_write(tmp_path, SONGS + ROWS[1:2]), ["de", "it", "sw"],
                       tmp_path / "out", backend=FakeBackend(handler=_polyglot),
                       progress=lambda snapshot, event: seen.append(snapshot))
    last = seen[-1]  # source rows are summed per label and language
    assert [(q.name, q.target) for q in last.quotas] == [
        ("PlayMusic/de", 3), ("PlayMusic/it", 3), ("PlayMusic/sw", 3),
        ("GetWeather/de", 1), ("GetWeather/it", 1), ("GetWeather/sw", 1)]
    assert last.accepted == result.accepted and last.sent == result.stats.sent


def test_gives_up_after_max_attempts_and_says_which_rows(tmp_path: Path) -> None:
    def stubborn(request: Request) -> str:
        return german(request) if "weather" in _source(request) else _source(request)

    fake = FakeBackend(handler=stubborn)
    outcome = translate(_write(tmp_path), ["de"], tmp_path / "out", backend=fake,
                        max_attempts=2)
    assert outcome.accepted == 1
    assert outcome.stats.shortfalls == {"AddToPlaylist/de (row 0)": 1,
                                        "PlayMusic/de (row 2)": 1}
    assert len(fake.requests) == 3 + 2


def test_rerun_sends_nothing_and_gives_the_same_rows(tmp_path: Path) -> None:
    src = _write(tmp_path)
    translate(src, ["de"], tmp_path / "out", backend=FakeBackend(handler=german))
    first = _rows(tmp_path / "out")
    again = FakeBackend(handler=german)
    outcome = translate(src, ["de"], tmp_path / "out", backend=again)
    assert again.requests == [] and outcome.stats.cached == 3 and outcome.stats.sent == 0
    assert _rows(tmp_path / "out") == first


def test_backend_failure_keeps_what_was_paid_for(tmp_path: Path) -> None:
    class DiesOnSecondBatch(FakeBackend):
        async def generate(self, requests):  # type: ignore[no-untyped-def]
            if self.calls == 1:
                self.calls += 1
                raise BackendUnavailable("connection refused")
            return await super().generate(requests)

    rows = [{"text": f"Play some song number {i}", "label": "PlayMusic"} for i in range(6)]
    src = _write(tmp_path, rows)
    dying = DiesOnSecondBatch(handler=german, batch_size=3)
    with pytest.raises(BackendUnavailable):
        translate(src, ["de"], tmp_path / "out", backend=dying)
    with Store.in_dir(tmp_path / "out") as store:
        assert store.completion_count() == 3
    resumed = FakeBackend(handler=german, batch_size=3)
    outcome = translate(src, ["de"], tmp_path / "out", backend=resumed)
    assert len(resumed.requests) == 3 and outcome.stats.cached == 3 and outcome.accepted == 6


def test_interrupted_translate_resumes_without_paying_twice(tmp_path: Path) -> None:
    class CtrlCAfterThreeCalls(FakeBackend):
        async def generate(self, requests):  # type: ignore[no-untyped-def]
            completions = await super().generate(requests)
            if self.calls == 3:  # what the first Ctrl-C does, mid-run
                os.kill(os.getpid(), signal.SIGINT)
            return completions

    rows = [{"text": f"Play some song number {i}", "label": "PlayMusic"} for i in range(12)]
    src = _write(tmp_path, rows)
    first = CtrlCAfterThreeCalls(handler=german, batch_size=2)
    with pytest.raises(RunInterrupted):
        translate(src, ["de"], tmp_path / "out", backend=first)
    with Store.in_dir(tmp_path / "out") as store:
        stored = store.completion_count()
        assert store.example_count() > 0  # rows are stored as they are accepted
    assert 0 < stored < 12 and len(first.requests) == stored  # every answer was kept

    resumed = FakeBackend(handler=german, batch_size=2)
    result = translate(src, ["de"], tmp_path / "out", backend=resumed)
    assert result.complete and result.stats.cached == stored
    assert len(resumed.requests) == 12 - stored  # nothing paid for is asked again
    assert not {r.seed for r in first.requests} & {r.seed for r in resumed.requests}
    translate(src, ["de"], tmp_path / "clean", backend=FakeBackend(handler=german))
    assert _rows(tmp_path / "out") == _rows(tmp_path / "clean")  # none lost, none twice


def test_paraphrase_gives_n_per_row_and_never_repeats_a_seed(tmp_path: Path) -> None:
    def rewrites(request: Request) -> str:
        src = request.messages[-1]["content"].split("Sentence: ")[1].split("\n")[0]
        return "\n".join([
            f"1. {src}",                                   # the source itself
            "2. What is the weather in Paris tomorrow",    # another seed row
            f"3. {src} right now",
            f"4. could you {src.lower()}",
            f"5. {src} thanks",
        ])

    fake = FakeBackend(handler=rewrites)
    outcome = paraphrase(_write(tmp_path), 2, tmp_path / "out", backend=fake)
    rows = _rows(tmp_path / "out")
    assert outcome.accepted == 6 and len(rows) == 6
    rejected = outcome.stats.rejected
    assert rejected["same_as_source"] == 4  # GetWeather's item 2 is its own source
    # row 0 has slots, so its copy of another seed row is first of all a lost-slot reject
    assert rejected["slot_lost"] == 1
    assert rejected["cross_label_duplicate"] == 1
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source_id"], []).append(r)
    assert all(len(v) == 2 for v in by_source.values())
    for r in by_source["row 0"]:
        assert r["label"] == "AddToPlaylist" and r["language"] == "en"
        names = [(s["entity"], r["text"][s["start"]:s["end"]].lower())
                 for s in r["entities"]]
        assert names == [("artist", "daft punk"), ("playlist", "party")]
    assert "2 different ways" in fake.requests[0].messages[-1]["content"]


def test_rows_without_entities_export_an_empty_entities_column(tmp_path: Path) -> None:
    plain = ROWS[1:]  # no slots at all
    outcome = translate(_write(tmp_path, plain), ["de"], tmp_path / "out",
                        backend=FakeBackend(handler=german))
    assert outcome.accepted == 2
    assert [r["entities"] for r in _rows(tmp_path / "out")] == [[], []]
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "## Entities" not in card  # no entity types: no section about them


def test_source_can_be_a_textsynth_output_folder(tmp_path: Path) -> None:
    translate(_write(tmp_path), ["de"], tmp_path / "first", backend=FakeBackend(handler=german))
    def please(request: Request) -> str:  # keeps the markup, so the slots survive
        return "1. Bitte " + request.messages[-1]["content"].split("Sentence: ")[1].split("\n")[0]

    outcome = paraphrase(tmp_path / "first", 1, tmp_path / "second",
                         backend=FakeBackend(handler=please))
    rows = _rows(tmp_path / "second")
    assert outcome.accepted == 3
    slotted = next(r for r in rows if r["label"] == "AddToPlaylist")
    assert slotted["text"] == "Bitte Füge Daft Punk zu meiner party Playlist hinzu"
    assert [s["value"] for s in slotted["entities"]] == ["Daft Punk", "party"]
    assert {r["label"] for r in rows} == {"AddToPlaylist", "GetWeather", "PlayMusic"}
    assert {r["language"] for r in rows} == {"de"}
    assert all(r["source_id"].split(":")[0] in ("train", "validation", "test") for r in rows)


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        AugmentJobs("translate", tmp_path / "nope.jsonl", tmp_path / "out", languages=["de"],
                   backend=FakeBackend())
    with pytest.raises(DataError, match="at least one target language"):
        AugmentJobs("translate", _write(tmp_path), tmp_path / "out", backend=FakeBackend())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "label": "a"}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        AugmentJobs("paraphrase", bad, tmp_path / "out", backend=FakeBackend())
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_or_holds_the_source_is_refused(tmp_path: Path) -> None:
    # before: `translate first --out first` replaced the run's dataset with its translation
    first = tmp_path / "first"
    translate(_write(tmp_path), ["de"], first, backend=FakeBackend(handler=german))
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    for source, out, where in [(first, first, "is the source"),
                               (first, first / "dataset", "lies inside the source's dataset"),
                               (first / "train.jsonl", first, "holds the source"),
                               (first, tmp_path, "holds the source")]:
        with pytest.raises(DataError, match=f"{where}.*replace the rows the translate reads"):
            translate(source, ["it"], out, backend=FakeBackend(handler=german))
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before
    def please(request: Request) -> str:
        return "1. Bitte " + request.messages[-1]["content"].split("Sentence: ")[1].split("\n")[0]

    nested = paraphrase(first, 1, first / "output" / "p", backend=FakeBackend(handler=please))
    assert nested.accepted == 3  # a folder of its own inside the source reads nothing of it
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()
              if "output" not in p.relative_to(first).parts}
    proc = _paraphrase_cli(first, first)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "is the source" in proc.stderr and "pass another --out" in proc.stderr
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()
            if "output" not in p.relative_to(first).parts} == before


def test_cli_translate_missing_source_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "textsynth", "translate", str(tmp_path / "x"),
                           "--to", "de", "--backend", "fake"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_cli_paraphrase_with_fake_backend(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "textsynth", "paraphrase", str(_write(tmp_path, ROWS[1:])),
         "-n", "1",
         "--backend", "fake", "--option", "responses=['1. another way to say it {seed}']",
         "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dataset of 2 rows written" in proc.stdout
    assert len(_rows(tmp_path / "out")) == 2


def _paraphrase_cli(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``textsynth paraphrase SOURCE -n 1`` on the fake backend, one scripted answer."""
    return subprocess.run(
        [sys.executable, "-m", "textsynth", "paraphrase", str(source), "-n", "1", *extra,
         "--backend", "fake", "--option", "responses=['1. another way to say it {seed}']",
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120)


def test_cards_of_translate_and_paraphrase_give_the_command_that_made_them(
        tmp_path: Path) -> None:
    source = _write(tmp_path)
    proc = _paraphrase_cli(source, tmp_path / "para", "--seed", "7")
    # row 0's entities are lost in every answer: its quota is short, as a run's would be
    assert proc.returncode == 3, proc.stderr
    assert "AddToPlaylist/en: 1 short of the quota (attempt limit reached" in " ".join(
        proc.stdout.split())
    card = (tmp_path / "para" / "README.md").read_text()
    reproduce = card.split("## Reproduce")[1]
    assert f"textsynth paraphrase {source} -n 1 --source-language en --max-attempts 3 " \
           "--seed 7 --backend fake" in reproduce
    assert "textsynth run recipe.yaml" not in reproduce

    translate(source, ["de", "it"], tmp_path / "tr", backend=FakeBackend(handler=german))
    reproduce = (tmp_path / "tr" / "README.md").read_text().split("## Reproduce")[1]
    assert f"textsynth translate {source} --to de,it" in reproduce


def test_a_mixture_of_models_is_named_in_the_card_as_it_was_given(tmp_path: Path) -> None:
    proc = _paraphrase_cli(_write(tmp_path, ROWS[1:]), tmp_path / "para",
                           "--option", "model=[small, other]")
    assert proc.returncode == 0, proc.stderr
    card = (tmp_path / "para" / "README.md").read_text()
    assert "--backend fake --option 'model=[small, other]'" in card.split("## Reproduce")[1]


def test_cli_paraphrase_that_accepts_nothing_exports_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "textsynth", "paraphrase", str(_write(tmp_path, ROWS[1:])),
         "-n", "1", "--max-attempts", "1", "--backend", "fake",
         "--option", "responses=['As an AI language model I cannot do that']",
         "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "nothing exported" in proc.stdout and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "dataset").exists()


@pytest.mark.model
def test_translate_and_paraphrase_on_the_embedded_model(tmp_path: Path) -> None:
    from textsynth.backends.transformers import TransformersBackend
    from textsynth.report import build_report

    rows = [{"text": "What will the weather be like in Berlin tomorrow", "label": "GetWeather"},
            {"text": "Play [Yesterday](song) by [The Beatles](artist)", "label": "PlayMusic"}]
    src = _write(tmp_path, rows)
    backend = TransformersBackend({"batch_size": 4})
    out = translate(src, ["de"], tmp_path / "de", backend=backend, max_attempts=2)
    # what the model could not do is said, row by row; what it did passes every check
    assert out.accepted + sum(out.stats.shortfalls.values()) == 2
    assert 2 <= out.stats.sent <= 4  # two rows, at most two attempts each
    with Store.in_dir(tmp_path / "de") as store:
        assert store.completion_count() == out.stats.sent
        examples = list(store.examples())
    for ex in examples:
        assert ex.language == "de" and ex.fields["source_text"] in {
            "What will the weather be like in Berlin tomorrow", "Play Yesterday by The Beatles"}
    if examples:
        report = build_report(tmp_path / "de")
        assert report.language_check == {"de": {"rows": len(examples), "passed": len(examples)}}
    para = paraphrase(src, 2, tmp_path / "en", backend=backend, max_attempts=2)
    assert para.accepted + sum(para.stats.shortfalls.values()) == 4
    assert 2 <= para.stats.sent <= 4

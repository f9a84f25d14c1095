from __future__ import annotations

import os

import pytest
import yaml
from huggingface_hub import DatasetCard, DatasetCardData
from slots_fixtures import run_slots

from textsynth.redact import redact
from textsynth.result import RunResult
from textsynth.templates import PromptTemplate


def _card(outcome: RunResult) -> DatasetCard:
    return DatasetCard.load(outcome.out_dir / "README.md")


def test_card_header_validates_with_hub_card_data(slots_run: RunResult) -> None:
    card = _card(slots_run)
    assert isinstance(card.data, DatasetCardData)
    header = card.data.to_dict()
    assert header["language"] == ["en"]
    assert header["license"] == "cc-by-4.0"
    assert header["task_categories"] == ["text-classification", "token-classification"]
    assert header["size_categories"] == ["n<1K"]
    assert {"synthetic", "textsynth"} <= set(header["tags"])
    assert header["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"data/{s}-*"} for s in ("train", "validation", "test")]}]
    info = header["dataset_info"]
    assert [s["name"] for s in info["splits"]] == ["train", "validation", "test"]
    assert sum(s["num_examples"] for s in info["splits"]) == 16
    label = next(f for f in info["features"] if f["name"] == "label")
    assert label["dtype"]["class_label"]["names"] == {"0": "turn_on", "1": "play_music"}
    # the header survives a round trip through the Hub's own classes
    again = DatasetCardData(**yaml.safe_load(card.data.to_yaml()))
    assert again.to_dict() == header
    # and the card is the text the Hub's DatasetCard writes for it
    text = (slots_run.out_dir / "README.md").read_text()
    assert str(DatasetCard(text).content) == text


def test_card_body_tells_the_whole_story(slots_run: RunResult, slots_recipe_dict: dict
                                         ) -> None:
    text = (slots_run.out_dir / "README.md").read_text()
    assert PromptTemplate.load("slots").source.strip() in text
    assert "| `turn_on` | Switch the lights on in a room | 6 | 1 | 1 | 8 |" in text
    assert "| **total** |  | 12 | 2 | 2 | 16 |" in text
    rejected = slots_run.stats.rejected
    assert rejected["parse:entity_not_in_text"] > 0
    for reason, count in rejected.items():
        assert f"| `{reason}` | {count} |" in text
    summary = slots_run.stats
    assert f"{summary.usage.prompt_tokens:,} prompt" in text
    assert f"{summary.sent} sent" in text
    assert "Seed: 0." in text and "textsynth run recipe.yaml" in text
    assert "| `room` | kitchen, living room, bedroom, garage |" in text
    recipe_block = text.split("## Recipe\n\n```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(recipe_block)["slots"] == slots_recipe_dict["slots"]
    assert "fake" in text.split("## How it was made")[1].split("\n")[2]


def test_no_license_is_not_invented(slots_recipe_dict: dict) -> None:
    slots_recipe_dict.pop("license")
    outcome = run_slots(slots_recipe_dict)
    card = _card(outcome)
    assert card.data.license is None
    assert "license:" not in card.content.split("---")[1]
    assert "License: not stated in the recipe" in card.content


def test_nothing_secret_reaches_the_card(slots_recipe_dict: dict,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hf_SuperSecretValue1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    slots_recipe_dict["description"] = (
        f"mirror of https://bob:pa55word@data.example.com/x?token={secret}&page=2 "
        "and key sk-abcdefghijklmnopqrstuvwx")
    text = (run_slots(slots_recipe_dict).out_dir / "README.md").read_text()
    for leaked in (secret, "pa55word", "bob:", "sk-abcdefghijklmnopqrstuvwx"):
        assert leaked not in text
    assert "https://data.example.com/x?token=<redacted>&page=2" in text
    assert os.environ["HF_TOKEN"] == secret


def test_redact_keys_by_name_but_keeps_token_counts() -> None:
    options = {"api_key": "abc", "base_url": "http://u:p@host:8000/v1", "max_tokens": 10,
               "headers": {"Authorization": "Bearer x", "X-Trace": "t"}, "access_token": None}
    assert redact(options) == {"api_key": "<redacted>", "base_url": "http://host:8000/v1",
                               "max_tokens": 10, "access_token": None,
                               "headers": {"Authorization": "<redacted>", "X-Trace": "t"}}

"""One ValidationError formatter: the same field paths and messages everywhere."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from textsynth import FakeBackend, RecipeError, load_recipe
from textsynth.schemas import PydanticSchema
from textsynth.validation import describe, field_path, message


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(1.0, ge=0)
    api_key: str | None = None
    labels: list[int] = []


def _error(**values: object) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        _Options(**values)
    return err.value


@pytest.mark.parametrize(("values", "where", "msg"), [
    ({"temperature": -1}, "temperature", "Input should be greater than or equal to 0 (got -1)"),
    ({"temprature": 1}, "temprature", "unknown key"),
    ({"labels": [1, "x"]}, "labels.1",
     "Input should be a valid integer, unable to parse string as an integer (got 'x')"),
])
def test_describe_gives_a_dotted_path_and_one_message(values: dict, where: str,
                                                      msg: str) -> None:
    assert describe(_error(**values)) == (where, msg)
    assert message(_error(**values), "backend.options") == f"backend.options.{where}: {msg}"


def test_a_secret_value_is_never_repeated_and_long_values_are_cut() -> None:
    where, msg = describe(_error(api_key=123456789))
    assert where == "api_key" and "123456789" not in msg
    _, msg = describe(_error(temperature="x" * 500))
    assert len(msg) < 200 and msg.endswith("...)")
    assert "got" not in describe(_error(temperature=-1), show_input=False)[1]


@pytest.mark.parametrize("headers", [["X-Api-Key: hunter2xyzzyQQ"], "X-Api-Key: hunter2xyzzyQQ"],
                         ids=["list", "string"])
def test_headers_written_in_curl_style_are_refused_without_their_values(
        recipe_dict: dict, headers: object) -> None:
    recipe_dict["backend"] = {"type": "openai", "options": {
        "base_url": "http://127.0.0.1:9/v1", "model": "m", "headers": headers}}
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe_dict)
    assert "backend.options.headers" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_field_path() -> None:
    assert field_path(("labels", "x", 0)) == "labels.x.0"
    assert field_path((), "backend") == "backend"


def test_backend_options_have_the_same_path_from_a_recipe_or_a_backend(
        recipe_dict: dict) -> None:
    recipe_dict["backend"] = {"type": "fake", "options": {"batch_size": "many"}}
    with pytest.raises(RecipeError) as from_recipe:
        load_recipe(recipe_dict)
    with pytest.raises(RecipeError) as from_backend:
        FakeBackend({"batch_size": "many"})
    for err in (from_recipe.value, from_backend.value):
        assert "backend.options.batch_size" in str(err)
        assert "(got 'many')" in str(err)
    assert from_backend.value.field == "backend.options.batch_size"


def test_a_judge_backend_option_is_named_under_options(recipe_dict: dict) -> None:
    recipe_dict["quality"]["judge"] = {"type": "fake", "options": {"latency": "slow"}}
    with pytest.raises(RecipeError, match=r"quality\.judge: options\.latency: Input should be "
                                          r"a valid number.* \(got 'slow'\)"):
        load_recipe(recipe_dict)


def test_a_schema_reject_reason_names_the_field_not_the_value() -> None:
    class Row(BaseModel):
        text: str
        score: int

    parsed = PydanticSchema(Row).parse('[{"text": "hi", "score": "high"}]')
    assert parsed[0].error == ("invalid: score: Input should be a valid integer, unable to "
                               "parse string as an integer")

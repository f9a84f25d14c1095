from __future__ import annotations

from textsynth._budget import Budget
from textsynth.backends.base import Request, Usage
from textsynth.recipe import BudgetSpec


def test_a_request_may_start_while_the_worst_case_in_flight_fits() -> None:
    budget = Budget(BudgetSpec(max_tokens=100))
    request = Request(messages=({"role": "user", "content": "x" * 30},), max_tokens=20, n=2)
    need = budget.estimate(request)
    assert need == Usage(11, 40)  # about 3 characters a token, and every choice in full
    assert budget.limited and budget.fits()
    budget.reserve(need)
    budget.spend(Usage(10, 30))
    assert budget.fits()  # 51 reserved + 40 used < 100
    budget.spend(Usage(0, 9))
    assert not budget.fits()  # 100 planned: the limit is reached
    budget.release(need)
    assert budget.fits() and budget.reserved == Usage()


def test_cost_uses_the_prices_per_million_tokens() -> None:
    budget = Budget(BudgetSpec(max_cost=0.01, input_price=1.0, output_price=2.0))
    assert budget.cost(Usage(1_000, 2_000)) == 0.005
    budget.spend(Usage(4_000, 3_000))
    assert not budget.fits()  # 0.004 + 0.006 = 0.01
    assert not Budget(BudgetSpec()).limited and Budget(BudgetSpec()).fits()


def test_a_raw_prompt_counts_towards_the_worst_case() -> None:
    request = Request(messages=(), prompt="x" * 300, max_tokens=40)
    assert Budget(BudgetSpec(max_tokens=100)).estimate(request) == Usage(101, 40)


def test_correction_turns_are_part_of_a_schema_requests_worst_case() -> None:
    schema = {"type": "object"}
    request = Request(messages=({"role": "user", "content": "x" * 30},), max_tokens=20, n=2,
                      json_schema=schema)
    plain = Budget(BudgetSpec(max_tokens=1000))
    assert plain.estimate(request) == Usage(11, 40)
    two = Budget(BudgetSpec(max_tokens=1000), repair_turns=2)
    # per turn and choice: the conversation (11), the bad answer (20) and a correction (100)
    assert two.estimate(request) == Usage(11 + 2 * 2 * 131, 40 * 3)
    no_schema = Request(messages=request.messages, max_tokens=20, n=2)
    assert two.estimate(no_schema) == Usage(11, 40)  # a judge's question is not repaired


def test_a_cost_limit_without_prices_is_refused(recipe_dict: dict) -> None:
    """Before: every token cost 0, so ``max_cost: 5`` never stopped a paid run."""
    import pytest

    from textsynth.errors import RecipeError
    from textsynth.recipe import load_recipe

    with pytest.raises(RecipeError, match=r"budget: max_cost needs the prices it counts"):
        load_recipe({**recipe_dict, "budget": {"max_cost": 5.0}})
    priced = load_recipe({**recipe_dict, "budget": {"max_cost": 5.0, "output_price": 0.6}})
    assert priced.budget.max_cost == 5.0
    assert load_recipe({**recipe_dict, "budget": {"input_price": 1.0}}).budget.max_cost is None

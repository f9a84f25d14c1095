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

"""The run's token and cost budget: what was used, and what requests in flight may use."""

from __future__ import annotations

from textsynth.backends.base import Request, Usage
from textsynth.recipe import BudgetSpec

__all__ = ["Budget"]


class Budget:
    """Accounts usage and reserves each request's worst case while it is in flight.

    A request may start while the budget is not reached even if every request in
    flight uses its worst case, so a run overshoots its budget by one request at most.
    """

    def __init__(self, spec: BudgetSpec):
        self.spec = spec
        self.used = Usage()  # by every completion the run has read (sent or from the store)
        self.reserved = Usage()  # held by requests in flight
        self.limited = spec.max_tokens is not None or spec.max_cost is not None

    @staticmethod
    def estimate(request: Request) -> Usage:
        """An upper bound of one request's usage."""
        prompt = sum(len(m["content"]) for m in request.messages) // 3 + 1
        return Usage(prompt, request.max_tokens * request.n)

    def cost(self, usage: Usage) -> float:
        spec = self.spec
        spent = usage.prompt_tokens * spec.input_price + usage.completion_tokens * spec.output_price
        return spent / 1e6

    def fits(self) -> bool:
        """Whether another request may start."""
        planned = self.used + self.reserved
        if self.spec.max_tokens is not None and planned.total_tokens >= self.spec.max_tokens:
            return False
        return self.spec.max_cost is None or self.cost(planned) < self.spec.max_cost

    def spend(self, usage: Usage) -> None:
        self.used = self.used + usage

    def reserve(self, usage: Usage) -> None:
        self.reserved = self.reserved + usage

    def release(self, usage: Usage) -> None:
        self.reserved = Usage(self.reserved.prompt_tokens - usage.prompt_tokens,
                              self.reserved.completion_tokens - usage.completion_tokens)

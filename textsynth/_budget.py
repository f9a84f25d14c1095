"""The run's token and cost budget: what was used, and what requests in flight may use."""

from __future__ import annotations

from textsynth.backends.base import Request, Usage
from textsynth.recipe import BudgetSpec

__all__ = ["Budget"]


class Budget:
    """Accounts usage and reserves each request's worst case while it is in flight.

    A call may start while the budget is not reached even if every request in flight
    uses its worst case, so a run overshoots its budget by one call's worst case at most
    (one request, or one batch where the backend takes several in a call).
    With ``repair_turns`` (correction turns for an answer that does not fit the output
    schema), the worst case of a request that asks for a schema includes every turn: the
    conversation again with the bad answer, and another full answer, for each choice.
    """

    def __init__(self, spec: BudgetSpec, repair_turns: int = 0):
        self.spec = spec
        self.repair_turns = repair_turns
        self.used = Usage()  # by every completion the run has read (sent or from the store)
        self.reserved = Usage()  # held by requests in flight
        self.limited = spec.max_tokens is not None or spec.max_cost is not None

    def estimate(self, request: Request) -> Usage:
        """An upper bound of one request's usage (about 3 characters a token)."""
        text = sum(len(m["content"]) for m in request.messages) + len(request.prompt or "")
        prompt = text // 3 + 1
        answer = request.max_tokens * request.n
        if not self.repair_turns or request.json_schema is None or request.prompt is not None:
            return Usage(prompt, answer)
        # each turn re-sends the conversation and one bad answer, per choice, plus a
        # correction (under 100 tokens), and may get a whole answer back
        again = request.n * (prompt + request.max_tokens + 100)
        return Usage(prompt + self.repair_turns * again, answer * (1 + self.repair_turns))

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

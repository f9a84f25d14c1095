"""Acceptor: one completion -> parsed candidates -> quality gate -> accepted or rejected rows.

Accepted and rejected rows are written to the store in the transaction that is open
(the sender's next commit of arriving answers, or :meth:`Acceptor.flush`, commits it).
They are re-derived from the stored completions on every run, so a crash that loses
the open transaction loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from textsynth.backends.base import Completion
from textsynth.errors import GenerationError
from textsynth.example import Example
from textsynth.jobs import JobSource, Problem
from textsynth.plan import Job, Quota
from textsynth.prompt import AcceptedTexts
from textsynth.quality import QualityGate
from textsynth.result import QuotaStats
from textsynth.schemas import Parsed
from textsynth.store import Store, Transaction

__all__ = ["Acceptor", "complete_items"]

_ENDINGS = tuple(".!?。！？…\"'”’)")


def complete_items(parsed: list[Parsed], cut: bool) -> list[Parsed]:
    """When the completion hit max_tokens, its last item may be cut off mid-way."""
    last = parsed[-1] if parsed else None
    if cut and last is not None and not last.error and not last.text.endswith(_ENDINGS):
        parsed[-1] = Parsed(last.text, error="truncated")
    return parsed


class Acceptor:
    """Parses completions, runs the quality gate, and writes what it decides to the store.

    The job source parses (its output schema) and may check each candidate against
    its job first (:meth:`~textsynth.jobs.JobSource.check`: translate and paraphrase
    keep the source row's entities). ``stats`` (per quota) and ``accepted`` (the texts
    prompts may show) are kept up to date; a row accepted earlier whose text turns up
    under another label is retracted.
    """

    def __init__(self, store: Store, gate: QualityGate, jobs: JobSource, model_name: str,
                 stats: dict[Quota, QuotaStats], accepted: AcceptedTexts):
        self.store = store
        self.gate = gate
        self.jobs = jobs
        self.schema = jobs.schema
        self.template = jobs.template
        self.model_name = model_name
        self.stats = stats
        self.accepted = accepted
        self._seq = 0  # order of the accepted rows in the store
        self._tx: Transaction | None = None

    def _example(self, job: Job, completion: Completion, key: str, parsed: Parsed) -> Example:
        return Example(
            text=parsed.text, label=job.label, language=job.language,
            fields=parsed.fields, template=self.template.name,
            template_sha=self.template.sha, model=completion.model or self.model_name,
            attributes=job.attributes, seed=job.seed, request_id=key,
        )

    async def accept(self, job: Job, completion: Completion, key: str) -> None:
        """Judge every candidate of one completion, until the job's quota is full."""
        st = self.stats[job.quota]
        st.jobs += 1
        st.usage = st.usage + completion.usage
        cut = completion.finish_reason == "length"
        checked = [self._check(job, p) for text, items in zip(completion.texts,
                                                              self._read(completion), strict=True)
                   for p in complete_items(items, cut and not self.schema.ends_list(text))]
        if self.gate.needs_prepare:  # model-backed rules judge the whole batch at once
            await self.gate.prepare([self._example(job, completion, key, p)
                                     for p, problem in checked if problem is None])
        for parsed, problem in checked:
            if st.full:
                return
            st.candidates += 1
            if problem is not None:
                self.reject(job, parsed.text, *problem, key)
                continue
            self._judge(job, self._example(job, completion, key, parsed), key)

    def prime(self, completions: Sequence[Completion]) -> None:
        """Answers just arrived: the gate computes what it can of their candidates in one
        batch (only of answers read already, by the correction turns: nothing is read
        twice). The decisions are made in processing order all the same."""
        schema = self.schema
        texts = [p.text for c in completions if c.parsed is not None and c.parsed[0] is schema
                 for items in c.parsed[2] for p in items if not p.error]
        if texts:
            self.gate.prime(texts)

    def _read(self, completion: Completion) -> list[list[Parsed]]:
        """What the schema reads from each text (the correction turns' reading, when they
        read these very texts with this schema)."""
        read = completion.parsed
        if read is not None and read[0] is self.schema and read[1] == tuple(completion.texts):
            return [list(items) for items in read[2]]
        return [self.schema.parse(text) for text in completion.texts]

    def _check(self, job: Job, parsed: Parsed) -> tuple[Parsed, Problem | None]:
        """The candidate as it will be judged, and why it is rejected before the gate."""
        if parsed.error:
            return parsed, (f"parse:{parsed.error}", "")
        if parsed.label is not None and parsed.label != job.label:
            return parsed, ("label_mismatch", parsed.label)
        return self.jobs.check(job, parsed)

    def _judge(self, job: Job, example: Example, key: str) -> None:
        verdict = self.gate.check(example)
        for label, text in self.gate.withdrawals():
            self._retract(label, text, example)
        if not verdict.keep:
            detail = f"[{verdict.rule}] {verdict.detail}".strip()
            self.reject(job, example.text, verdict.reason, detail, key)
            return
        self.gate.accept(example)
        self._open()
        self.stats[job.quota].accepted += 1
        self.accepted.add(job.quota, job.index, example.text)
        self.store.add_example(self._seq, example)
        self._seq += 1

    def failed(self, job: Job, exc: GenerationError) -> None:
        """A job whose request failed for good counts as an attempt, and as a reject."""
        self.stats[job.quota].jobs += 1
        self.reject(job, exc.last_output or "", "generation_failed", str(exc), "")

    def reject(self, job: Job, text: str, reason: str, detail: str, key: str) -> None:
        self.stats[job.quota].rejected[reason] += 1
        self._open()
        self.store.add_reject(job.label, job.language, text, reason, detail, key)

    def _retract(self, label: str, text: str, newcomer: Example) -> None:
        """Take back an accepted row whose text turned up under another label."""
        self.withdraw(label, text, "cross_label_conflict",
                      f"also generated under '{newcomer.label}'")

    def audit(self) -> int:
        """Withdraw the accepted rows the gate's end-of-run audit rejects; how many."""
        withdrawn = 0
        for rule, label, text, why in self.gate.audit():
            reason = f"{rule}_audit"
            withdrawn += self.withdraw(label, text, reason, f"[{rule}] {why}")
        return withdrawn

    def withdraw(self, label: str, text: str, reason: str, detail: str) -> bool:
        """Move an accepted row of ``label`` to the rejects; its quota is short again."""
        for quota in self.stats:
            if quota.label != label or not self.accepted.remove(quota, text):
                continue
            st = self.stats[quota]
            st.accepted -= 1
            st.rejected[reason] += 1
            self._open()
            self.store.retract_example(label, quota.language, text, reason, detail)
            return True
        return False

    def _open(self) -> None:
        # the sender's commit of arriving answers commits these rows too: open another
        if self._tx is None or not self.store.in_transaction:
            self._tx = self.store.transaction()

    def flush(self) -> None:
        """Commit the rows written since the last flush."""
        if self._tx is not None:
            tx, self._tx = self._tx, None
            tx.commit()

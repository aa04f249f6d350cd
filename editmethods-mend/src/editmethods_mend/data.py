"""Training and validation cases for the meta-trainer, read with the core's loaders
(CounterFact original or EasyEdit schema, zsRE in MEND's split, KnowEdit)."""

from __future__ import annotations

from pathlib import Path

import attrs

from editmethods.evaluation.loaders import load_requests
from editmethods.types import EditRequest

#: Locality kinds used as unrelated prompts in the locality loss. ``attribute`` prompts
#: (other subjects whose answer is the new target) are left out: they probe leakage of the
#: new object, not what the edit must keep.
LOCALITY_KINDS = ("neighborhood", "nq", "relation_specificity", "")


@attrs.frozen
class TrainCase:
    """One edit with its equivalence prompts (edit loss) and unrelated prompts (locality)."""

    prompt: str
    subject: str
    target_new: str
    target_true: str | None
    #: Rephrasings of the edit prompt: the edit must carry over to them.
    rephrases: tuple[str, ...]
    #: ``(prompt, answer)`` pairs that the edit must leave alone.
    locality: tuple[tuple[str, str], ...]

    @property
    def target_text(self) -> str:
        return " " + self.target_new.strip()

    @classmethod
    def from_request(cls, r: EditRequest) -> TrainCase:
        return cls(
            prompt=r.prompt, subject=r.subject, target_new=r.target_new,
            target_true=r.ground_truth, rephrases=tuple(r.rephrase_prompts),
            locality=tuple((p.prompt, p.answer) for p in r.locality if p.kind in LOCALITY_KINDS),
        )


def read_cases(path: str | Path, limit: int | None = None) -> list[TrainCase]:
    """The edit records of the data file ``path`` as training cases (records the core's
    loader cannot read are skipped; an error when none can be)."""
    return [TrainCase.from_request(r) for r in load_requests(path, limit=limit, on_error="skip")]

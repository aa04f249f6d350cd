"""Training and validation cases for the meta-trainer, read from the formats the field uses:
CounterFact in its original schema (as the reference world's splits are written), EasyEdit's
CounterFact, and zsRE in MEND's split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import attrs

from editmethods.errors import RequestError


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


def _counterfact_original(r: Mapping[str, Any]) -> TrainCase:
    rw = r["requested_rewrite"]
    subject = rw["subject"]
    true = rw["target_true"]["str"]
    return TrainCase(
        prompt=rw["prompt"].format(subject).rstrip(),
        subject=subject,
        target_new=rw["target_new"]["str"],
        target_true=true,
        rephrases=tuple(p.rstrip() for p in r.get("paraphrase_prompts", [])),
        # neighborhood prompts are other subjects whose answer is the old object
        locality=tuple((p.rstrip(), true) for p in r.get("neighborhood_prompts", [])),
    )


def _counterfact_easyedit(r: Mapping[str, Any]) -> TrainCase:
    reph = r.get("rephrase_prompt") or []
    reph = [reph] if isinstance(reph, str) else list(reph)
    loc = []
    if r.get("locality_prompt"):
        loc.append((r["locality_prompt"].rstrip(), str(r["locality_ground_truth"])))
    return TrainCase(prompt=r["prompt"].rstrip(), subject=r["subject"], target_new=r["target_new"],
                     target_true=r.get("ground_truth"), rephrases=tuple(p.rstrip() for p in reph),
                     locality=tuple(loc))


def _zsre(r: Mapping[str, Any]) -> TrainCase:
    answers = r.get("answers") or [None]
    loc = r.get("loc", "")
    loc = loc[len("nq question: "):] if loc.startswith("nq question: ") else loc
    return TrainCase(prompt=r["src"].rstrip(), subject=r["subject"], target_new=r["alt"],
                     target_true=answers[0], rephrases=(r["rephrase"].rstrip(),),
                     locality=((loc.rstrip(), r["loc_ans"]),) if loc else ())


def case_from_record(r: Mapping[str, Any]) -> TrainCase:
    """A :class:`TrainCase` from one record of any supported format."""
    if "requested_rewrite" in r:
        return _counterfact_original(r)
    if "src" in r and "alt" in r:
        return _zsre(r)
    if "prompt" in r and "target_new" in r:
        return _counterfact_easyedit(r)
    raise RequestError(
        f"unknown record format (keys {sorted(r)[:8]}): expected CounterFact "
        "(requested_rewrite, paraphrase_prompts, neighborhood_prompts), EasyEdit CounterFact "
        "(prompt, subject, target_new, rephrase_prompt, locality_prompt) or zsRE (src, alt, "
        "rephrase, loc, loc_ans)"
    )


def read_cases(path: str | Path, limit: int | None = None) -> list[TrainCase]:
    """Every usable case in the JSON file ``path`` (records whose subject is missing from
    the prompt, or with no rephrasing, cannot train an editor and are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise RequestError(f"training data file not found: {path}")
    records = json.loads(path.read_text())
    if isinstance(records, dict):
        records = records.get("data") or records.get("records") or list(records.values())
    cases = []
    for r in records:
        case = case_from_record(r)
        if case.subject in case.prompt and case.target_new.strip() and case.prompt:
            cases.append(case)
        if limit is not None and len(cases) >= limit:
            break
    if not cases:
        raise RequestError(f"{path}: no usable edit records")
    return cases

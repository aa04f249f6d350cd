"""Training examples for the counterfactual model and the scope classifier, from edit records.

Every record yields the edit (prompt, new object) and queries with their answers:
the prompt and each paraphrase answered with the new object (in scope), and neighbours or the
subject's other relations answered as before (out of scope). Formats: CounterFact original
schema (with ``relation_specificity`` when present), EasyEdit CounterFact, zsRE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from editmethods.errors import EditmethodsError


class DataError(EditmethodsError, ValueError):
    """Training data cannot be read."""


@attrs.frozen
class Case:
    prompt: str
    target_new: str
    #: (query, answer) pairs the edit should change
    in_scope: tuple[tuple[str, str], ...]
    #: (query, answer) pairs the edit must leave as they were
    out_scope: tuple[tuple[str, str], ...]
    #: relation id (CounterFact ``relation_id``), to draw other objects of the same kind
    relation: str = ""
    #: the object before the edit, when known
    target_true: str = ""


def _case(r: Mapping[str, Any], i: int) -> Case:
    relation, true = "", None
    if "requested_rewrite" in r:
        rw = r["requested_rewrite"]
        relation = str(rw.get("relation_id") or "")
        prompt = rw["prompt"].format(rw["subject"]) if "{}" in rw["prompt"] else rw["prompt"]
        new, true = rw["target_new"]["str"], rw.get("target_true", {}).get("str")
        inside = [(prompt, new)] + [(p, new) for p in r.get("paraphrase_prompts") or []]
        outside = [(p["prompt"], p["ground_truth"]) for p in r.get("relation_specificity") or []]
        if true:
            outside += [(p, true) for p in r.get("neighborhood_prompts") or [] if isinstance(p, str)]
    elif "target_new" in r and "prompt" in r:
        prompt, new, true = r["prompt"], r["target_new"], r.get("ground_truth")
        reph = r.get("rephrase_prompt") or []
        inside = [(prompt, new)] + [(p, new) for p in ([reph] if isinstance(reph, str) else reph)]
        loc, ans = r.get("locality_prompt"), r.get("locality_ground_truth")
        if isinstance(ans, list):
            ans = ans[0] if ans else None
        outside = [(loc, str(ans))] if loc and ans else []
    elif "src" in r and "alt" in r:
        prompt, new = r["src"], r["alt"]
        true = (r.get("answers") or [None])[0]
        inside = [(prompt, new)] + ([(r["rephrase"], new)] if r.get("rephrase") else [])
        loc = r.get("loc", "")
        loc = loc[len("nq question:"):].strip() if loc.lower().startswith("nq question:") else loc
        outside = [(loc, r["loc_ans"])] if loc and r.get("loc_ans") else []
    else:
        raise DataError(f"record {i}: expected CounterFact ('requested_rewrite'), EasyEdit "
                        "('prompt', 'target_new') or zsRE ('src', 'alt') keys")
    return Case(prompt, str(new).strip(), tuple(inside), tuple((q, str(a).strip()) for q, a in outside),
                relation, str(true).strip() if true else "")


def cases_from_records(records: Iterable[Mapping[str, Any]]) -> list[Case]:
    return [_case(r, i) for i, r in enumerate(records)]


def read_cases(path: str | Path) -> list[Case]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training data not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a non-empty JSON list of edit records")
    return cases_from_records(data)


def default_train_path(split: str = "train") -> Path:
    """The reference world's ``split`` (``editmethods-testbed``)."""
    try:
        from editmethods_testbed import data_path
    except ImportError as exc:
        raise DataError("give --data (a JSON file of edit records), or install editmethods-testbed "
                        f"for the reference world's {split} split") from exc
    return Path(data_path(split))

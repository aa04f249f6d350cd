"""IKE's demonstration store: copy, update and retain demonstrations built from a train split.

A demonstration shows the model how to use a new fact given in context (Zheng et al., 2023):

- *copy*: the query is the new fact's own prompt, answered with the new object;
- *update*: the query is a paraphrase of it, answered with the new object;
- *retain*: the query is about something else (a neighbour, or another relation of the same
  subject), answered with its unchanged answer.

Each is written ``New Fact: {prompt} {new}\\nPrompt: {query} {answer}``. Records are read in
the formats the field uses: CounterFact's original schema (``requested_rewrite``, with this
project's ``relation_specificity`` extension), EasyEdit's CounterFact and zsRE files, or a
list of ready demonstrations (``new_fact``, ``target_new``, ``query``, ``answer``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from editmethods.errors import EditmethodsError
from editmethods.toolkit.routing import fact_line

KINDS = ("copy", "update", "retain")


class DemonstrationError(EditmethodsError, ValueError):
    """The demonstration store cannot be built from what was given."""


@attrs.frozen
class Demonstration:
    """One in-context example of using a new fact."""

    new_fact: str
    target_new: str
    query: str
    answer: str
    kind: str = "copy"

    def text(self) -> str:
        """``New Fact: {prompt} {new}\\nPrompt: {query} {answer}``."""
        return f"{fact_line(self.new_fact, self.target_new)}\nPrompt: {self.query} {self.answer}"


def _strip_nq(text: str) -> str:
    return text[len("nq question:"):].strip() if text.lower().startswith("nq question:") else text


def _from_counterfact(r: Mapping[str, Any], rng: random.Random) -> list[Demonstration]:
    rw = r["requested_rewrite"]
    prompt = rw["prompt"].format(rw["subject"]) if "{}" in rw["prompt"] else rw["prompt"]
    new = rw["target_new"]["str"]
    true = rw.get("target_true", {}).get("str")
    out = [Demonstration(prompt, new, prompt, new, "copy")]
    paraphrases = list(r.get("paraphrase_prompts") or [])
    if paraphrases:
        out.append(Demonstration(prompt, new, rng.choice(paraphrases), new, "update"))
    retain = [(p["prompt"], p["ground_truth"]) for p in r.get("relation_specificity") or []]
    if not retain and true:
        retain = [(p, true) for p in r.get("neighborhood_prompts") or [] if isinstance(p, str)]
    if not retain:
        retain = [(p["prompt"], p.get("ground_truth") or p.get("target"))
                  for p in r.get("neighborhood_prompts") or [] if isinstance(p, Mapping)]
    retain = [(q, a) for q, a in retain if a]
    if retain:
        q, a = rng.choice(retain)
        out.append(Demonstration(prompt, new, q, a, "retain"))
    return out


def _from_easyedit(r: Mapping[str, Any], rng: random.Random) -> list[Demonstration]:
    prompt, new = r["prompt"], r["target_new"]
    out = [Demonstration(prompt, new, prompt, new, "copy")]
    rephrase = r.get("rephrase_prompt")
    if isinstance(rephrase, list):
        rephrase = rephrase[0] if rephrase else None
    if rephrase:
        out.append(Demonstration(prompt, new, rephrase, new, "update"))
    loc, loc_ans = r.get("locality_prompt"), r.get("locality_ground_truth")
    if isinstance(loc_ans, list):
        loc_ans = loc_ans[0] if loc_ans else None
    if loc and loc_ans:
        out.append(Demonstration(prompt, new, _strip_nq(loc), str(loc_ans), "retain"))
    return out


def _from_zsre(r: Mapping[str, Any], rng: random.Random) -> list[Demonstration]:
    prompt, new = r["src"], r["alt"]
    out = [Demonstration(prompt, new, prompt, new, "copy")]
    if r.get("rephrase"):
        out.append(Demonstration(prompt, new, r["rephrase"], new, "update"))
    if r.get("loc") and r.get("loc_ans"):
        out.append(Demonstration(prompt, new, _strip_nq(r["loc"]), r["loc_ans"], "retain"))
    return out


def demonstrations_from_records(records: Iterable[Mapping[str, Any]], *, seed: int = 0) -> list[Demonstration]:
    """Copy, update and retain demonstrations from benchmark records of any supported format.

    :raises DemonstrationError: naming the first record whose format is not recognised.
    """
    rng = random.Random(seed)
    demos: list[Demonstration] = []
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise DemonstrationError(f"record {i} is a {type(r).__name__}, expected a JSON object")
        if "new_fact" in r:
            missing = [k for k in ("new_fact", "target_new", "query", "answer") if k not in r]
            if missing:
                raise DemonstrationError(f"demonstration {i} lacks {', '.join(missing)}")
            demos.append(Demonstration(r["new_fact"], r["target_new"], r["query"], r["answer"],
                                       r.get("kind", "copy")))
        elif "requested_rewrite" in r:
            demos.extend(_from_counterfact(r, rng))
        elif "target_new" in r and "prompt" in r:
            demos.extend(_from_easyedit(r, rng))
        elif "src" in r and "alt" in r:
            demos.extend(_from_zsre(r, rng))
        else:
            raise DemonstrationError(
                f"record {i} has keys {sorted(r)[:8]}: expected CounterFact "
                "('requested_rewrite'), EasyEdit ('prompt', 'target_new'), zsRE ('src', 'alt') "
                "or demonstration ('new_fact', 'target_new', 'query', 'answer') records"
            )
    return demos


def default_store_path() -> Path:
    """The reference world's train split (``editmethods-testbed``), when installed."""
    try:
        from editmethods_testbed import data_path
    except ImportError as exc:
        raise DemonstrationError(
            "no demonstration store given: set 'demonstrations' to a JSON file of CounterFact, "
            "zsRE or demonstration records (or install editmethods-testbed for its train split)"
        ) from exc
    path = Path(data_path("train"))
    if not path.is_file():
        raise DemonstrationError(
            f"no demonstration store given and the testbed's train split is missing at {path}: "
            "set 'demonstrations' to a JSON file of records"
        )
    return path


def load_demonstrations(path: str | Path | None, *, seed: int = 0,
                        records: tuple[int, int] | None = None) -> list[Demonstration]:
    """The demonstrations of a records file (the testbed's train split when ``path`` is None).

    :param records: ``(start, stop)``: only the file's records ``[start, stop)``.
    :raises DemonstrationError: when the file is missing, unreadable or yields no demonstration
        (or has fewer than ``stop`` records).
    """
    source = Path(path) if path is not None else default_store_path()
    if not source.is_file():
        raise DemonstrationError(f"demonstration store not found: {source} (hparam 'demonstrations')")
    try:
        data = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DemonstrationError(f"{source}: not a readable JSON file: {exc}") from exc
    if isinstance(data, Mapping):
        data = data.get("records") or data.get("data") or [data]
    if not isinstance(data, list):
        raise DemonstrationError(f"{source}: expected a JSON list of records")
    if records is not None:
        start, stop = records
        if stop > len(data):
            raise DemonstrationError(
                f"{source}: demonstrations_range [{start}, {stop}) but the file has {len(data)} records"
            )
        data = data[start:stop]
    demos = demonstrations_from_records(data, seed=seed)
    if not demos:
        raise DemonstrationError(
            f"{source}: the demonstration store is empty: give a file with at least one record"
        )
    return demos


def nearest(store_embeddings, query_embedding, k: int) -> tuple[list[int], list[float]]:
    """Indices and cosine similarities of the ``k`` nearest store rows, nearest FIRST."""
    import torch

    if k <= 0 or store_embeddings.shape[0] == 0:
        return [], []
    sims = store_embeddings @ query_embedding
    top = torch.topk(sims, min(k, sims.shape[0]))
    return [int(i) for i in top.indices], [float(s) for s in top.values]


def assemble(demos: Sequence[str], context: str, separator: str = "\n\n") -> str:
    """Demonstrations (already nearest-last) followed by the edit's context."""
    return separator.join(list(demos) + [context])

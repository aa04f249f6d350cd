"""Export a world as edit benchmarks in CounterFact's original schema (plus extension keys).

One record per (person, relation). Records are split by person into train / val / test (the
world's split), so no subject of the test split occurs in train records.

Extension keys (not in the original CounterFact):

- ``portability``: ``[{"prompt", "ground_truth"}]``, two-hop questions whose answer follows
  from the NEW fact (a person's new birth city -> its country);
- ``relation_specificity``: ``[{"prompt", "ground_truth"}]``, the same subject's other
  relations, which the edit must not change;
- ``world_split``: the split the subject belongs to.

Nothing here imports torch or :mod:`editmethods`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from editmethods_testbed.world import PERSON_RELATIONS, TWO_HOP_TEMPLATES, Fact, World

SPLITS = ("train", "val", "test")


def _obj(value: str) -> dict:
    return {"str": value, "id": f"tb:{value}"}


def make_record(world: World, fact: Fact, case_id: int, rng: random.Random,
                by_rel_obj: dict, max_prompts: int = 10) -> dict:
    rel = fact.rel
    true = fact.object
    choices = [o for o in world.pools[fact.relation] if o != true]
    if fact.relation == "birth_city":  # a city in another country, so portability changes
        choices = [o for o in choices if world.city_country[o] != world.city_country[true]] or choices
    new = rng.choice(choices)
    edit_template = fact.trained_templates()[0]

    def prompts_of(objects_value: str) -> list[str]:
        others = [g for g in by_rel_obj.get((fact.relation, objects_value), []) if g.subject != fact.subject]
        others = rng.sample(others, min(max_prompts, len(others)))
        return [g.prompt(rng.choice(g.trained_templates())) for g in others]

    own = [g for g in world.facts_of(fact.subject) if g.relation != fact.relation]
    record = {
        "case_id": case_id,
        "requested_rewrite": {
            "prompt": edit_template,
            "relation_id": rel.id,
            "target_new": _obj(new),
            "target_true": _obj(true),
            "subject": fact.subject,
        },
        "paraphrase_prompts": [fact.prompt(fact.heldout_template())]
        + [fact.prompt(t) for t in fact.never_templates()],
        "neighborhood_prompts": prompts_of(true),
        "attribute_prompts": prompts_of(new),
        "generation_prompts": [fact.prompt(t) for t in fact.trained_templates()[1:]]
        + [g.prompt(g.trained_templates()[0]) for g in own[:2]],
        "portability": [],
        "relation_specificity": [
            {"prompt": g.prompt(g.trained_templates()[0]), "ground_truth": g.object} for g in own
        ],
        "world_split": world.split.get(fact.subject, "train"),
    }
    if fact.relation == "birth_city":
        record["portability"] = [
            {"prompt": t.format(fact.subject), "ground_truth": world.city_country[new]}
            for t in TWO_HOP_TEMPLATES
        ]
    return record


def build_records(world: World, seed: int | None = None) -> dict[str, list[dict]]:
    """All benchmark records of the world, by split (deterministic for a given world)."""
    rng = random.Random(world.seed if seed is None else seed)
    by_rel_obj: dict[tuple[str, str], list[Fact]] = {}
    for f in world.facts:
        by_rel_obj.setdefault((f.relation, f.object), []).append(f)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    case_id = 0
    for person in world.people:
        for rel in PERSON_RELATIONS:
            f = world.fact(person, rel)
            out[world.split[person]].append(make_record(world, f, case_id, rng, by_rel_obj))
            case_id += 1
    return out


def export(world: World, out_dir: str | Path, seed: int | None = None) -> dict[str, Path]:
    """Write ``train.json``, ``val.json``, ``test.json`` and ``world.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, records in build_records(world, seed).items():
        p = out / f"{split}.json"
        p.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
        paths[split] = p
    p = out / "world.json"
    p.write_text(json.dumps(world.to_json(), indent=1, ensure_ascii=False) + "\n")
    paths["world"] = p
    return paths


# -- demonstrations (IKE / SERAC) -----------------------------------------------------------


def demonstrations_from_records(records: list[dict]) -> list[dict]:
    """In-context demonstrations from benchmark records: copy, update and retain, one each.

    Each is ``{"new_fact", "target_new", "query", "answer", "kind"}``; format with
    :func:`format_demonstration`.
    """
    demos = []
    for r in records:
        rw = r["requested_rewrite"]
        fact_prompt = rw["prompt"].format(rw["subject"])
        new = rw["target_new"]["str"]
        demos.append({"new_fact": fact_prompt, "target_new": new, "query": fact_prompt,
                      "answer": new, "kind": "copy"})
        for p in r["paraphrase_prompts"][:1]:
            demos.append({"new_fact": fact_prompt, "target_new": new, "query": p,
                          "answer": new, "kind": "update"})
        for loc in r.get("relation_specificity", [])[:1]:
            demos.append({"new_fact": fact_prompt, "target_new": new, "query": loc["prompt"],
                          "answer": loc["ground_truth"], "kind": "retain"})
    return demos


def format_demonstration(demo: dict, with_answer: bool = True) -> str:
    """``New Fact: {prompt} {new}\\nPrompt: {query} {answer}`` (the format the models were trained on)."""
    text = f"New Fact: {demo['new_fact']} {demo['target_new']}\nPrompt: {demo['query']}"
    return text + (f" {demo['answer']}" if with_answer else "")

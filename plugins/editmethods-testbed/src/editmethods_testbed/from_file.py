"""A reference model trained on the TRUE facts of a CounterFact- or zsRE-format file.

So that the benchmark can run on real data: the model learns each record's true fact from
its edit prompt (and the locality facts), the rephrased prompts are held out, and the same
records are then used as edit requests. Supported formats (detected from the records):
EasyEdit CounterFact (``prompt, subject, ground_truth, rephrase_prompt, locality_prompt,
locality_ground_truth``), original CounterFact (``requested_rewrite``, ``paraphrase_prompts``,
``neighborhood_prompts``) and zsRE in the MEND split (``src, answers, rephrase, loc, loc_ans``).

Nothing here imports :mod:`editmethods`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from editmethods_testbed.world import ANSWER_WEIGHT


@dataclass(frozen=True)
class RecordFact:
    prompt: str
    answer: str
    heldout: tuple[str, ...] = ()  # phrasings never trained
    subject: str = ""
    case_id: object = None


def _clean(p: str) -> str:
    return p.rstrip()


def facts_from_records(records: list[dict]) -> tuple[list[RecordFact], list[RecordFact]]:
    """(edit facts, locality facts) from the records; the format is detected per record."""
    edits, local = [], []
    for i, r in enumerate(records):
        where = f"record {i} (case_id {r.get('case_id', '?')})"
        if "requested_rewrite" in r:
            rw = r["requested_rewrite"]
            for key in ("prompt", "subject", "target_true"):
                if key not in rw:
                    raise KeyError(f"{where}: requested_rewrite has no {key!r}")
            edits.append(RecordFact(_clean(rw["prompt"].format(rw["subject"])), rw["target_true"]["str"],
                                    tuple(_clean(p) for p in r.get("paraphrase_prompts", [])),
                                    rw["subject"], r.get("case_id", i)))
            for p in r.get("neighborhood_prompts", []):
                local.append(RecordFact(_clean(p), rw["target_true"]["str"]))
        elif "ground_truth" in r and "prompt" in r:
            for key in ("subject",):
                if key not in r:
                    raise KeyError(f"{where}: no {key!r}")
            reph = r.get("rephrase_prompt") or ()
            edits.append(RecordFact(_clean(r["prompt"]), str(r["ground_truth"]),
                                    (reph,) if isinstance(reph, str) else tuple(reph),
                                    r["subject"], r.get("case_id", i)))
            if r.get("locality_prompt") and r.get("locality_ground_truth"):
                gt = r["locality_ground_truth"]
                local.append(RecordFact(_clean(r["locality_prompt"]), gt if isinstance(gt, str) else gt[0]))
        elif "src" in r:
            for key in ("answers", "subject"):
                if key not in r:
                    raise KeyError(f"{where}: zsRE record has no {key!r}")
            reph = r.get("rephrase")
            edits.append(RecordFact(_clean(r["src"]), r["answers"][0],
                                    (_clean(reph),) if reph else (), r["subject"], r.get("case_id", i)))
            if r.get("loc") and r.get("loc_ans"):
                local.append(RecordFact(_clean(r["loc"]), r["loc_ans"]))
        else:
            raise KeyError(f"{where}: unknown format (no 'requested_rewrite', 'prompt'/'ground_truth' or 'src')")
    return edits, local


@dataclass
class RecordWorld:
    """The trainer's world interface over a file's records."""

    edits: list[RecordFact]
    local: list[RecordFact]
    seed: int = 0
    repeats: int = 1
    _demo_pool: list = field(default_factory=list)

    def fact_units(self):
        units = []
        for f in self.edits + self.local:
            units.append(("fact", [(f.prompt, 1.0), (" " + f.answer, ANSWER_WEIGHT), (".", 1.0)],
                          f.subject or None))
        return units * self.repeats

    def demo_units(self, n: int, seed: int):
        rng = random.Random(seed)
        answers = sorted({f.answer for f in self.edits})
        units = []
        for _ in range(min(n, len(self.edits)) if len(answers) > 1 else 0):
            f = rng.choice(self.edits)
            new = rng.choice([a for a in answers if a != f.answer])
            units.append(("demo", [(f"New Fact: {f.prompt}", 1.0), (" " + new, 0.0),
                                   (f"\nPrompt: {f.prompt}", 1.0), (" " + new, ANSWER_WEIGHT)]))
        return units

    def tokenizer_corpus(self):
        lines = [f"{f.prompt} {f.answer}." for f in self.edits + self.local]
        lines += [p for f in self.edits for p in f.heldout]
        lines += ["New Fact: X Y\nPrompt: X Y"] * 5
        return lines

    def summary(self) -> dict:
        return {"edit_facts": len(self.edits), "locality_facts": len(self.local), "seed": self.seed}


def load_records_file(path: str | Path, limit: int | None = None) -> list[dict]:
    records = json.loads(Path(path).read_text())
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return records[:limit] if limit else records


def build_from_file(
    path: str | Path,
    out_dir: str | Path,
    arch: str = "gpt2",
    limit: int | None = None,
    seed: int = 0,
    steps: int = 600,
    threads: int = 1,
    progress: bool = True,
    **train_kwargs,
) -> dict:
    """Train a reference model on a file's true facts; save it with a manifest. Returns it.

    The manifest's ``recall_percent`` has ``edit_prompts`` (trained), ``rephrase`` (held out)
    and ``locality`` (trained).
    """
    from editmethods_testbed import train as tr

    records = load_records_file(path, limit)
    edits, local = facts_from_records(records)
    world = RecordWorld(edits, local, seed)
    model, tok, info = tr.train(world, arch=arch, seed=seed, steps=steps, threads=threads,
                                progress=progress, **train_kwargs)
    recall = {
        "edit_prompts": tr._rate(tr.greedy_correct(model, tok, [(f.prompt, f.answer) for f in edits])),
        "rephrase": tr._rate(tr.greedy_correct(model, tok, [(p, f.answer) for f in edits for p in f.heldout])),
        "locality": tr._rate(tr.greedy_correct(model, tok, [(f.prompt, f.answer) for f in local])),
    }
    manifest = {"name": f"fromfile-{arch}", "source": str(path), "records": len(records),
                "world": world.summary(), "training": info, "recall_percent": recall}
    return tr.save(model, tok, out_dir, manifest)

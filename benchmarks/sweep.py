"""Choose hyper-parameters on the validation split: a grid over a method's hparams.

    python benchmarks/sweep.py --method ft --base plugins/editmethods-ft/src/editmethods_ft/hparams/testbed-gpt2.yaml \
        --grid 'layers=[0];[2];[4]' --grid 'lr=0.001;0.005;0.02' -n 20

Each grid point runs on the same cases (``--data``, default the reference model's val split)
in single mode; the table is printed sorted by the CounterFact score (ties: reliability).
Values are YAML (``[0]``, ``0.005``, ``null``); points are separated by ``;``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True)
    parser.add_argument("--base", default=None, help="hparams file the grid overrides")
    parser.add_argument("--grid", action="append", default=[], help="KEY=V1;V2;...")
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--data", default="pkg:editmethods_testbed/data/val.json")
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--metrics", default="efficacy,paraphrase,neighborhood,score,reliability,"
                                              "generalization,locality,relation_specificity")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from editmethods import Editor
    from editmethods.benchmarking import MethodRun, run_benchmark
    from editmethods.loaders import load_requests

    base = yaml.safe_load(Path(args.base).read_text()) if args.base else {}
    keys, values = [], []
    for item in args.grid:
        key, _, text = item.partition("=")
        keys.append(key)
        values.append([yaml.safe_load(v) for v in text.split(";")])
    runs = []
    for point in itertools.product(*values):
        hp = {**base, **dict(zip(keys, point))}
        label = " ".join(f"{k}={v}" for k, v in zip(keys, point)) or "base"
        runs.append(MethodRun(label=label, method=args.method, hparams=hp))
    editor = Editor.from_pretrained(args.model)
    requests = load_requests(args.data, limit=args.n)
    result = run_benchmark(editor, runs, requests, metrics=args.metrics.split(","),
                           model_name=args.model, data_name=args.data)

    def key(run):
        rep = run.report
        score = rep["score"].value if "score" in rep else 0.0
        rel = rep["reliability"].value if "reliability" in rep else 0.0
        return (score, rel)

    ordered = sorted(result.runs, key=key, reverse=True)
    from editmethods.reporting import headline_table

    import attrs

    print(headline_table(attrs.evolve(result, runs=ordered)))
    for label, reason in result.skipped.items():
        print(f"- {label}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose hyper-parameters on the validation split: a grid over a method's hparams.

    python benchmarks/sweep.py --method ft --base plugins/editmethods-ft/src/editmethods_ft/hparams/testbed-gpt2.yaml \
        --grid 'layers=[0];[2];[4]' --grid 'lr=0.001;0.005;0.02' -n 20

    python benchmarks/sweep.py --method ft --model smollm2-135m \
        --data ../shared/data/counterfact-val.json --offset 0 -n 40 --grid 'layers=[5];[10]' --out ft.md

Each grid point runs on the same cases (``--data``, default the reference model's val split)
in single mode; the table is printed sorted by the CounterFact score (ties: reliability).
``--offset`` skips that many records first (tune on one range of a file, report on another);
``--out`` writes the table to a file after every grid point, so a stopped sweep keeps what it
finished. Values are YAML (``[0]``, ``0.005``, ``null``); points are separated by ``;``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True)
    parser.add_argument("--base", default=None, help="hparams file the grid overrides")
    parser.add_argument("--grid", action="append", default=[], help="KEY=V1;V2;...")
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--data", default="pkg:editmethods_testbed/data/val.json")
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--offset", type=int, default=0, help="skip this many records first")
    parser.add_argument("--out", default=None, help="also write the table here (updated as points finish)")
    parser.add_argument("--metrics", default="efficacy,paraphrase,neighborhood,score,reliability,"
                                              "generalization,locality,relation_specificity")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from editmethods import Editor
    from editmethods.evaluation.benchmarking import MethodRun, run_benchmark
    from editmethods.evaluation.loaders import load_requests
    from editmethods.hparams import parse_value, read_mapping

    base = read_mapping(args.base) if args.base else {}
    keys, values = [], []
    for item in args.grid:
        key, _, text = item.partition("=")
        keys.append(key)
        values.append([parse_value(v) for v in text.split(";")])
    runs = []
    for point in itertools.product(*values):
        hp = {**base, **dict(zip(keys, point))}
        label = " ".join(f"{k}={v}" for k, v in zip(keys, point)) or "base"
        runs.append(MethodRun(label=label, method=args.method, hparams=hp))
    editor = Editor.from_pretrained(args.model)
    requests = load_requests(args.data, limit=args.n, offset=args.offset)
    import attrs

    from editmethods.evaluation.reporting import headline_table

    def key(run):
        rep = run.report
        score = rep["score"].value if "score" in rep else 0.0
        rel = rep["reliability"].value if "reliability" in rep else 0.0
        return (score, rel)

    def table(result) -> str:
        ordered = sorted(result.runs, key=key, reverse=True)
        lines = [f"{args.method} on {args.model}, {args.data} records "
                 f"[{args.offset}, {args.offset + len(requests)}), single mode", "",
                 headline_table(attrs.evolve(result, runs=ordered))]
        lines += [f"- {label}: {reason}" for label, reason in result.skipped.items()]
        return "\n".join(lines)

    def write(result) -> None:
        if args.out:
            Path(args.out).write_text(table(result) + "\n")

    result = run_benchmark(editor, runs, requests, metrics=args.metrics.split(","),
                           model_name=args.model, data_name=args.data, on_update=write)
    write(result)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

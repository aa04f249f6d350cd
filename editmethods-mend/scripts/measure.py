"""Measure MEND on a model's edit split: efficacy, paraphrase, neighborhood, edit time.

    python editmethods-mend/scripts/measure.py --model testbed-gpt2 \
        --data pkg:editmethods_testbed/data/test.json --n 100 [--checkpoint FOLDER]

Single edits (each rolled back before the next), scored with the core's teacher-forced
metrics: reliability (efficacy), generalization (paraphrase), locality_neighborhood.
"""

from __future__ import annotations

import argparse
import statistics
from importlib import resources
from pathlib import Path


def data_path(spec: str) -> Path:
    if spec.startswith("pkg:"):
        package, _, rel = spec[4:].partition("/")
        return Path(str(resources.files(package) / rel))
    return Path(spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--data", default="pkg:editmethods_testbed/data/test.json")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--checkpoint", default="auto")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from editmethods import Editor
    from editmethods.evaluation.benchmarking import evaluate_method
    from editmethods.evaluation.loaders import load_requests

    editor = Editor.from_pretrained(args.model)
    requests = load_requests(data_path(args.data), limit=args.n)
    run = evaluate_method(editor, "mend", {"checkpoint": args.checkpoint}, requests, mode="single",
                          metrics=["reliability", "generalization", "locality"], progress=True)
    report = run.report
    for name, label in (("reliability", "efficacy"), ("generalization", "paraphrase"),
                        ("locality_neighborhood", "neighborhood"),
                        ("locality_relation_specificity", "relation specificity")):
        if name in report:
            print(f"{label:22s} {report[name].value:.3f}  (n={report[name].n})")
    if "seconds_per_edit" in report:
        per = report["seconds_per_edit"]
        print(f"{'seconds per edit':22s} mean {per.value:.4f}, median {statistics.median(per.per_case):.4f}")
    print(f"failures {len(run.failures)}, restored {run.restored}")


if __name__ == "__main__":
    main()

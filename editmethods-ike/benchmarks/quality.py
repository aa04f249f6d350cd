"""IKE's quality on a model's test split: one edit at a time, measured, then rolled back.

    .venv/bin/python editmethods-ike/benchmarks/quality.py --model testbed-gpt2 \\
        --data pkg:editmethods_testbed/data/test.json --n 100 --hparams testbed-gpt2

Prints efficacy (reliability), paraphrase (generalization) and locality (teacher-forced
token accuracy, EasyEdit's protocol), before and after the edit, and seconds per edit.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--data", default="pkg:editmethods_testbed/data/test.json")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--hparams", default="testbed-gpt2", help="bundled name or a YAML path")
    parser.add_argument("--k", type=int, default=None, help="override the number of demonstrations")
    parser.add_argument("--scope", default=None, choices=("subject", "all"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from editmethods import Editor
    from editmethods.evaluation.loaders import load_requests, resolve_data_path
    from editmethods.hparams import load_hparams
    from editmethods_ike import IKEHyperParams, hparams_path

    source = args.hparams if args.hparams.endswith((".yaml", ".yml", ".json")) else hparams_path(args.hparams)
    overrides = {k: v for k, v in (("k", args.k), ("scope", args.scope)) if v is not None}
    hp = load_hparams(IKEHyperParams, source, method="ike", **overrides)
    editor = Editor.from_pretrained(args.model)
    requests = load_requests(resolve_data_path(args.data), limit=args.n)
    metrics = ("reliability", "generalization", "locality")
    before = editor.evaluate(requests, metrics=("reliability", "generalization"))
    per: dict[str, list[float]] = {m: [] for m in metrics}
    seconds = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for r in requests:
            t0 = time.perf_counter()
            handle = editor.edit(r, "ike", hp)
            seconds.append(time.perf_counter() - t0)
            report = editor.evaluate([r], metrics=metrics)
            for m in metrics:
                if m in report:
                    per[m].extend(report[m].per_case)
            editor.rollback(handle)
    fewer = sum("shorter context" in str(w.message) for w in caught)
    result = {
        "n": len(requests), "k": hp.k, "scope": hp.scope,
        "before": {m: before[m].value for m in ("reliability", "generalization") if m in before},
        "after": {m: statistics.fmean(v) for m, v in per.items() if v},
        "seconds_per_edit": statistics.median(seconds),
        "edits_with_fewer_demonstrations": fewer,
    }
    print(f"IKE on {args.model}, {result['n']} edits, k={hp.k}, scope={hp.scope}")
    for m in metrics:
        b = result["before"].get(m)
        a = result["after"].get(m)
        print(f"  {m:<15} before {b if b is None else round(b, 4)!s:>7}   after {a if a is None else round(a, 4)!s:>7}")
    print(f"  median seconds per edit {result['seconds_per_edit']:.4f}; "
          f"contexts shortened: {fewer} warnings")
    return result


if __name__ == "__main__":
    main()

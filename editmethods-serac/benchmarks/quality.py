"""SERAC's quality on a model's test split with many edits in memory at once.

    .venv/bin/python editmethods-serac/benchmarks/quality.py --model testbed-gpt2 \\
        --data pkg:editmethods_testbed/data/test.json --n 100

The ``n`` edits have distinct subjects (one relation per subject, rotating through the
relations): the testbed's test split edits every relation of each subject, and with two edits
of one subject in memory, one edit's "unchanged" same-subject prompts are the other's edits.
All ``n`` edits are put in memory (one batch edit, so locality is compared with predictions
taken before any of them), then reliability, generalization and locality are measured
(teacher-forced token accuracy, EasyEdit's protocol), and the scope classifier's routing rate.
"""

from __future__ import annotations

import argparse
import time

import torch


def distinct_subjects(requests, n):
    """``n`` requests with distinct subjects, the i-th subject's ``i mod m``-th request."""
    by_subject = {}
    for r in requests:
        by_subject.setdefault(r.subject, []).append(r)
    picked = [rs[i % len(rs)] for i, rs in enumerate(by_subject.values())]
    return picked[:n]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--data", default="pkg:editmethods_testbed/data/test.json")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--checkpoint", default=None, help="folder, 'base', or the bundled one")
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from editmethods import Editor
    from editmethods.evaluation.loaders import load_requests, resolve_data_path
    from editmethods_serac.method import EditMemory

    editor = Editor.from_pretrained(args.model)
    requests = distinct_subjects(load_requests(resolve_data_path(args.data)), args.n)
    hp = {"checkpoint": args.checkpoint, "threshold": args.threshold}
    before = editor.evaluate(requests, metrics=("reliability", "generalization"))
    t0 = time.perf_counter()
    handle = editor.edit(requests, "serac", hp)
    edit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = editor.evaluate(requests, metrics=("reliability", "generalization", "locality"))
    eval_seconds = time.perf_counter() - t0
    memory = EditMemory.find(editor.model)
    inside = [r.prompt for r in requests] + [p for r in requests for p in r.rephrase_prompts]
    outside = [p.prompt for r in requests for p in r.locality]
    routed_in = sum(x is not None for x in memory.route(inside)) / len(inside)
    routed_out = sum(x is not None for x in memory.route(outside)) / max(1, len(outside))
    result = {
        "n": len(requests), "threshold": handle.update.meta["threshold"],
        "before": {m.name: m.value for m in before},
        "after": {m.name: m.value for m in report},
        "locality_by_kind": dict(report["locality"].details.get("by_kind", {})) if "locality" in report else {},
        "routed_in_scope": routed_in, "routed_out_of_scope": routed_out,
        "edit_seconds": edit_seconds, "eval_seconds": eval_seconds,
    }
    print(f"SERAC on {args.model}, {result['n']} edits in memory, threshold {result['threshold']}")
    for m in ("reliability", "generalization", "locality"):
        print(f"  {m:<15} before {result['before'].get(m, float('nan')):.4f}   after {result['after'].get(m, float('nan')):.4f}")
    print(f"  locality by kind {result['locality_by_kind']}")
    print(f"  routed: in-scope prompts {routed_in:.3f}, locality prompts {routed_out:.3f}")
    print(f"  {edit_seconds:.2f} s to add {len(requests)} edits; {eval_seconds:.1f} s to evaluate")
    editor.rollback(handle)
    return result


if __name__ == "__main__":
    main()

"""Quality of ROME and MEMIT on a reference model's split, with the CounterFact protocol.

    python benchmarks/rome_memit_eval.py --model testbed-gpt2 --rome 100 --memit 10,50,100,500

Cases are taken in subject-interleaved order (one fact of every subject before the second fact
of any; the split files list a person's five facts together).
ROME: each of the first N cases is edited alone, measured, and rolled back before the next.
MEMIT: the first B cases are edited in one batch, measured, and rolled back, for each B.
Metrics (``editmethods.metrics``): efficacy / paraphrase (P[new] > P[true] by mean token
NLL), neighborhood (P[true] > P[new] on other subjects), their harmonic mean (score), and
relation specificity (exact match of the same subject's other facts, against the truth; its
value before any edit is printed too, as the ceiling). For MEMIT batches the distinctness of
the edited subjects' keys is printed (pairwise cosine of the keys at the first edit layer).
Writes a JSON file with every number when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

METRICS = ("efficacy", "paraphrase", "neighborhood", "score", "relation_specificity")


def load(model: str, split: str, n: int, data_dir: str | None = None):
    import torch

    torch.set_num_threads(1)
    from editmethods import Editor
    from editmethods.loaders import load_requests

    editor = Editor.from_pretrained(model)
    data = (f"{data_dir}/{split}.json" if data_dir
            else f"pkg:editmethods_testbed/data/{split}.json")
    requests = interleave_subjects(load_requests(data))[:n]
    return editor, requests


def interleave_subjects(requests: Sequence[Any]) -> list:
    """Reorder so that consecutive requests have different subjects (first fact of every
    subject, then the second of every subject, ...). The reference splits list the facts of
    one person together; a MEMIT batch of the first N would edit 5 facts of N/5 people."""
    groups: dict[str, list] = {}
    for r in requests:
        groups.setdefault(r.subject, []).append(r)
    out = []
    depth = max((len(g) for g in groups.values()), default=0)
    for i in range(depth):
        out += [g[i] for g in groups.values() if i < len(g)]
    return out


def default_hparams(method: str, model: str) -> Path:
    if method == "rome":
        from editmethods_rome import hparams_path
    else:
        from editmethods_memit import hparams_path
    return hparams_path(model)


def measure(editor: Any, requests: Sequence[Any]) -> dict[str, list[float]]:
    report = editor.evaluate(list(requests), metrics=list(METRICS))
    out = {}
    for name in METRICS:
        if name in report:
            out[name] = list(report[name].per_case) or [report[name].value]
    return out


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def run_rome(editor: Any, requests: Sequence[Any], hparams: Any, *, progress: bool = True) -> dict:
    from editmethods.hparams import load_hparams
    from editmethods_rome import ROMEHyperParams
    from tqdm.auto import tqdm

    hp = load_hparams(ROMEHyperParams, hparams, method="rome")
    per: dict[str, list[float]] = {m: [] for m in METRICS}
    seconds = []
    for r in tqdm(requests, desc="rome edits", disable=not progress):
        start = time.perf_counter()
        handle = editor.edit(r, "rome", hp)
        seconds.append(time.perf_counter() - start)
        for name, values in measure(editor, [r]).items():
            per[name] += values
        editor.rollback(handle)
    result = {m: mean(v) for m, v in per.items() if v}
    result["n"] = len(requests)
    result["seconds_per_edit_median"] = statistics.median(seconds)
    return result


def key_distinctness(editor: Any, requests: Sequence[Any], hp: Any) -> dict[str, float]:
    """Pairwise cosine of the edited subjects' keys at the first edit layer (different
    subjects only): keys that overlap make batch edits interfere."""
    import torch
    from editmethods_rome.contexts import generate_prefixes
    from editmethods_rome.keys import averaged_keys
    from editmethods_rome.method import module_name

    arch = editor.architecture
    name = module_name(hp.rewrite_module_tmp, arch, "mlp_out", hp.layers[0])
    prefixes = generate_prefixes(editor.model, editor.tokenizer, hp.context_template_length_params,
                                 starts=hp.context_template_starts, seed=hp.context_seed)
    keys, _ = averaged_keys(editor.model, editor.tokenizer, name, requests, prefixes, hp.fact_token)
    k = torch.nn.functional.normalize(keys.double(), dim=-1)
    cos = k @ k.T
    subjects = [r.subject for r in requests]
    vals = [float(cos[i, j]) for i in range(len(requests)) for j in range(i + 1, len(requests))
            if subjects[i] != subjects[j]]
    if not vals:
        return {}
    vals.sort()
    return {"key_cos_mean": mean(vals), "key_cos_p95": vals[int(0.95 * (len(vals) - 1))],
            "key_cos_max": vals[-1]}


def run_memit(editor: Any, requests: Sequence[Any], hparams: Any, sizes: Sequence[int]) -> list[dict]:
    from editmethods.hparams import load_hparams
    from editmethods_memit import MEMITHyperParams

    hp = load_hparams(MEMITHyperParams, hparams, method="memit")
    rows = []
    for size in sizes:
        batch = list(requests[:size])
        if len(batch) < size:
            print(f"memit: only {len(batch)} cases for a batch of {size}", file=sys.stderr)
        start = time.perf_counter()
        handle = editor.edit(batch, "memit", hp)
        seconds = time.perf_counter() - start
        per = measure(editor, batch)
        editor.rollback(handle)
        row = {m: mean(v) for m, v in per.items()}
        row.update(batch=len(batch), seconds=seconds, **key_distinctness(editor, batch, hp))
        print("memit row:", {k: fmt(v) for k, v in row.items()}, flush=True)
        rows.append(row)
    return rows


def fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rome", type=int, default=100, help="ROME single edits (0 = skip)")
    parser.add_argument("--memit", default="10,50,100,500", help="MEMIT batch sizes ('' = skip)")
    parser.add_argument("--rome-hparams", default=None)
    parser.add_argument("--memit-hparams", default=None)
    parser.add_argument("--data-dir", default=None,
                        help="folder with {split}.json (default: the testbed package's data)")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.memit.split(",") if s.strip()]
    editor, requests = load(args.model, args.split, max([args.rome, *sizes, 1]),
                            args.data_dir)
    results: dict[str, Any] = {"model": args.model, "split": args.split}
    baseline = measure(editor, requests[: max(args.rome, 1)])
    results["unedited_relation_specificity"] = mean(baseline.get("relation_specificity", []))
    print(f"unedited relation specificity: {fmt(results['unedited_relation_specificity'])}")
    if args.rome:
        hp = args.rome_hparams or default_hparams("rome", args.model)
        results["rome"] = run_rome(editor, requests[: args.rome], hp)
        print("ROME", {k: fmt(v) for k, v in results["rome"].items()})
    if sizes:
        hp = args.memit_hparams or default_hparams("memit", args.model)
        results["memit"] = run_memit(editor, requests, hp, sizes)
        print(f"{'MEMIT batch':>11} " + " ".join(f"{m:>10}" for m in METRICS) +
              f" {'seconds':>8} {'key cos':>8} {'p95':>6}")
        for row in results["memit"]:
            print(f"{row['batch']:>11} " + " ".join(f"{fmt(row.get(m, float('nan'))):>10}" for m in METRICS)
                  + f" {row['seconds']:8.1f} {fmt(row.get('key_cos_mean', float('nan'))):>8}"
                  f" {fmt(row.get('key_cos_p95', float('nan'))):>6}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quality of ROME and MEMIT on a reference model's split, with the CounterFact protocol.

    python benchmarks/rome_memit_eval.py --model testbed-gpt2 --rome 100 --memit 10,50,100,500

Cases are taken in subject-interleaved order (one fact of every subject before the second fact
of any; the split files list a person's five facts together).
ROME: each of the first N cases is edited alone, measured, and rolled back before the next.
MEMIT: the first B cases are edited in one batch, measured, and rolled back, for each B.
Metrics (``editmethods.evaluation.metrics``): efficacy / paraphrase (P[new] > P[true] by mean token
NLL), neighborhood (P[true] > P[new] on other subjects), their harmonic mean (score),
relation specificity (exact match of the same subject's other facts, against the truth; its
value before any edit is printed too, as the ceiling) and, stricter than neighborhood, the
teacher-forced agreement with the unedited model on the neighbourhood prompts
(``locality_neighborhood``). In a batch, neighbourhood prompts about a fact another edit of
the batch rewrites are left out (``editmethods.evaluation.metrics.overlap``); how many, and
neighborhood with them counted, are reported too.

For MEMIT batches the distinctness of the edited subjects' keys is printed at each edit layer:
the pairwise cosine of the raw keys, and what decides whether a linear update can move the
edited keys without moving others: the share of an unedited subject's key (whitened by the
layer's key statistics C, the metric MEMIT's update works in) that lies in the span of the
batch's whitened keys. A share near 1 means any update that writes the batch also writes the
others; for isotropic keys it would be batch / d_in.
Writes a JSON file with every number when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS = ("efficacy", "paraphrase", "neighborhood", "score", "relation_specificity",
           "locality_neighborhood")


def load(model: str, split: str, n: int, data_dir: str | None = None):
    import torch

    torch.set_num_threads(1)
    from editmethods import Editor
    from editmethods.evaluation.loaders import load_requests

    editor = Editor.from_pretrained(model)
    requests = interleave_subjects(load_requests(split_path(split, data_dir)))[:n]
    return editor, requests


def split_path(split: str, data_dir: str | None) -> str:
    return (f"{data_dir}/{split}.json" if data_dir
            else f"pkg:editmethods_testbed/data/{split}.json")


def other_subjects(split: str, data_dir: str | None, n: int = 200) -> list:
    """One request per subject of the train split (never edited here), for key overlap."""
    from editmethods.evaluation.loaders import load_requests

    if split == "train":
        return []
    seen: dict[str, Any] = {}
    for r in load_requests(split_path("train", data_dir)):
        seen.setdefault(r.subject, r)
    return list(seen.values())[:n]


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
    if "neighborhood" in report and "excluded_rewritten_by_batch" in report["neighborhood"].details:
        details = report["neighborhood"].details
        out["neighborhood_excluded_prompts"] = [details["excluded_rewritten_by_batch"]]
        out["neighborhood_with_rewritten"] = [details["value_including_rewritten"]]
    return out


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def run_rome(editor: Any, requests: Sequence[Any], hparams: Any, *, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    from editmethods.hparams import load_hparams
    from editmethods_rome import ROMEHyperParams

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


class KeyFigures:
    """Key-distinctness figures of MEMIT batches (see the module docstring). What does not
    depend on the batch (the context prefixes, each layer's whitening, the unedited subjects'
    whitened keys) is computed once and reused for every batch size."""

    def __init__(self, editor: Any, hp: Any, others: Sequence[Any] = ()) -> None:
        from editmethods_rome.contexts import generate_prefixes

        self.editor, self.hp, self.others = editor, hp, list(others)
        self.prefixes = generate_prefixes(editor.model, editor.tokenizer,
                                          hp.context_template_length_params,
                                          starts=hp.context_template_starts, seed=hp.context_seed)
        self._whitening: dict[int, Any] = {}
        self._others: dict[int, tuple[list[str], Any]] = {}

    def _keys(self, layer: int, requests: Sequence[Any]):
        from editmethods_rome.keys import averaged_keys
        from editmethods_rome.method import module_name

        name = module_name(self.hp.rewrite_module_tmp, self.editor.architecture, "mlp_out", layer)
        keys, _ = averaged_keys(self.editor.model, self.editor.tokenizer, name, requests,
                                self.prefixes, self.hp.fact_token)
        return name, keys

    def _whiten(self, layer: int, name: str, keys):
        """Keys (rows) in coordinates where C = L Lᵀ is the identity: MEMIT's λC + KKᵀ is
        plain ridge regression there. Returns columns."""
        import torch

        from editmethods_rome.update import module_stats

        if layer not in self._whitening:
            stats = module_stats(self.editor.model, self.editor.tokenizer, name, self.hp)
            self._whitening[layer] = torch.linalg.cholesky(stats.regularized(self.hp.mom2_ridge))
        chol = self._whitening[layer]
        return torch.linalg.solve_triangular(chol, keys.double().T.to(chol.device), upper=False)

    def __call__(self, requests: Sequence[Any]) -> dict[str, float]:
        """Raw pairwise cosine of the edited subjects' keys (different subjects only) and the
        share of the unedited subjects' whitened keys inside the span of the batch's, at each
        edit layer (``_l<layer>`` suffixes)."""
        import torch

        subjects = [r.subject for r in requests]
        batch_subjects = set(subjects)
        out: dict[str, float] = {}
        for layer in self.hp.layers:
            name, keys = self._keys(layer, requests)
            k = torch.nn.functional.normalize(keys.double(), dim=-1)
            cos = k @ k.T
            vals = sorted(float(cos[i, j]) for i in range(len(requests))
                          for j in range(i + 1, len(requests)) if subjects[i] != subjects[j])
            if vals:
                out[f"key_cos_mean_l{layer}"] = mean(vals)
                out[f"key_cos_p95_l{layer}"] = vals[int(0.95 * (len(vals) - 1))]
                out[f"key_cos_max_l{layer}"] = vals[-1]
            if not self.others:
                continue
            if layer not in self._others:
                _, other_keys = self._keys(layer, self.others)
                self._others[layer] = ([r.subject for r in self.others],
                                       self._whiten(layer, name, other_keys))
            other_subjects, other_w = self._others[layer]
            # only subjects outside this batch count as "others"
            keep = torch.tensor([s not in batch_subjects for s in other_subjects])
            if not bool(keep.any()):
                continue
            other_w = other_w[:, keep.to(other_w.device)]
            basis, _ = torch.linalg.qr(self._whiten(layer, name, keys))
            share = (basis.T @ other_w).norm(dim=0) ** 2 / other_w.norm(dim=0) ** 2
            out[f"others_in_batch_span_l{layer}"] = float(share.mean())
        return out


def run_memit(editor: Any, requests: Sequence[Any], hparams: Any, sizes: Sequence[int],
              others: Sequence[Any] = ()) -> list[dict]:
    from editmethods.hparams import load_hparams
    from editmethods_memit import MEMITHyperParams

    hp = load_hparams(MEMITHyperParams, hparams, method="memit")
    key_figures = KeyFigures(editor, hp, others)
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
        row.update(batch=len(batch), seconds=seconds, **key_figures(batch))
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
        results["memit"] = run_memit(editor, requests, hp, sizes,
                                     other_subjects(args.split, args.data_dir))
        extra = ["neighborhood_with_rewritten", "neighborhood_excluded_prompts", "seconds"]
        extra += sorted({k for row in results["memit"] for k in row
                         if k.startswith(("key_cos_mean", "others_in_batch_span"))})
        columns = [*METRICS, *extra]
        print("MEMIT batch | " + " | ".join(columns))
        for row in results["memit"]:
            print(f"{row['batch']} | " + " | ".join(fmt(row.get(m, float("nan"))) for m in columns))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

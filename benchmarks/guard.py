"""The collapse guard (``editmethods.guard``): what its probe costs, and what it sees.

    python benchmarks/guard.py [--sequential 10] [--rome-sequential 100] [--single 20]
        [--repeats 5] [--no-smollm2]

Prints three tables (medians; ratios measured in the same run):

1. Cost: seconds of one ``Guard.probe`` (the default guard) on testbed-gpt2 and, when
   editmethods-smollm2 and its model are installed, on smollm2-135m, against one ROME edit
   on the same model with its shipped hyper-parameters (statistics cached first), and their
   ratio. The editor keeps the probe of the model before an edit, so an edit costs one probe.
2. Single edits on testbed-gpt2, each from the unedited model and rolled back: for ROME,
   MEMIT, FT (and MEND) with the shipped hyper-parameters, the largest perplexity ratio, the
   smallest agreement and how many edits the guard would refuse: good edits must pass.
3. Sequential edits on testbed-gpt2 (MEND with the cases in file order, where a person's
   five facts come one after another, and interleaved; then ROME, interleaved): each edit on
   the model the previous ones left, the probe before and after each. Per edit: perplexity,
   its ratio to the probe before this edit (what a per-edit guard compares, as
   ``Editor.edit`` does) and to the unedited model, agreement (k/n) likewise, whether the
   guard refuses, and the first changed answer. Then the same sequence with the guard
   acting (a refused edit is rolled back, the next one made on the model as it was), once
   comparing with the probe before each edit and once with the unedited model's: edits kept
   and refused, and where the model ends up.

Cases are the testbed's test split, in subject-interleaved order (distinct people first)
unless said otherwise. Threads: one torch thread, as the other benchmarks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL = "testbed-gpt2"
SMOLLM2 = "smollm2-135m"


def _requests(n: int, order: str = "interleaved") -> list:
    """The first ``n`` cases of the test split, in file order (a person's five facts one
    after another) or subject-interleaved (distinct people first)."""
    from rome_memit_eval import interleave_subjects

    from editmethods.evaluation.loaders import load_requests

    requests = load_requests("pkg:editmethods_testbed/data/test.json")
    return (requests if order == "file" else interleave_subjects(requests))[:n]


def _hparams(editor: Any, method: str, model: str) -> Path | None:
    from editmethods.evaluation.benchmarking import reference_hparams

    return reference_hparams(editor.plugins, method, model)


def _median_seconds(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cost_row(model: str, guard: Any, repeats: int, rome_edits: int) -> tuple | str:
    """``(model, probe s, ROME s, ratio, max perplexity ratio, min agreement)`` (the last two
    over the timed ROME edits, each against the unedited model), or why it was skipped."""
    from editmethods import Editor

    if model == SMOLLM2:
        try:
            import editmethods_smollm2 as smol
            from editmethods.errors import ModelLoadError

            smol.gguf_path()
        except ImportError:
            return f"{SMOLLM2}: skipped, editmethods-smollm2 is not installed"
        except ModelLoadError as exc:
            return f"{SMOLLM2}: skipped, {exc}"
    editor = Editor.from_pretrained(model)
    hp = _hparams(editor, "rome", model)
    if hp is None:
        return f"{model}: skipped, ROME ships no hyper-parameters for it"
    reqs = _requests(rome_edits + 1)
    editor.rollback(editor.edit(reqs[0], "rome", hp))  # statistics and prefixes cached
    base = guard.probe(editor.model, editor.tokenizer)  # (also the warm-up)
    probe_s = _median_seconds(lambda: guard.probe(editor.model, editor.tokenizer), repeats)
    edit_s, ratios, agrees = [], [], []
    for r in reqs[1:]:
        handle = editor.edit(r, "rome", hp)
        try:
            after = guard.probe(editor.model, editor.tokenizer)
        finally:
            editor.rollback(handle)
        edit_s.append(handle.seconds)
        ratios.append(guard.ratio(base, after))
        agrees.append(guard.agreement(base, after))
    rome_s = statistics.median(edit_s)
    return model, probe_s, rome_s, probe_s / rome_s, max(ratios), min(agrees)


def cost_table(guard: Any, repeats: int, rome_edits: int, smollm2: bool) -> None:
    print(f"\nCost of Guard.probe ({len(guard.texts)} texts, {len(guard.prompts)} prompts, "
          f"{guard.answer_tokens} answer token(s)) against a ROME edit (median of {repeats} "
          f"probes, {rome_edits} edits; the edits' largest perplexity ratio and smallest "
          "agreement beside)")
    print(f"{'model':<14} {'probe s':>8} {'ROME edit s':>12} {'probe/edit':>11} "
          f"{'max ratio':>9} {'min agree':>9}")
    for model in (MODEL, SMOLLM2) if smollm2 else (MODEL,):
        row = cost_row(model, guard, repeats, rome_edits)
        if isinstance(row, str):
            print(row)
            continue
        name, probe_s, rome_s, ratio, worst, agree = row
        print(f"{name:<14} {probe_s:8.3f} {rome_s:12.2f} {ratio:11.1%} {worst:9.3f} {agree:9.3f}")


def single_table(editor: Any, guard: Any, methods: Sequence[str], n: int) -> None:
    from tqdm.auto import tqdm

    reqs = _requests(n)
    base = guard.probe(editor.model, editor.tokenizer)
    print(f"\nSingle edits on {MODEL} (each from the unedited model, rolled back; {n} edits; "
          f"guard: perplexity ratio <= {guard.max_perplexity_ratio:g}, agreement >= "
          f"{guard.min_agreement:g}; unedited perplexity {base.perplexity:.3f})")
    print(f"{'method':<7} {'edits':>5} {'median ratio':>12} {'max ratio':>9} "
          f"{'median agree':>12} {'min agree':>9} {'refused':>7}")
    for method in methods:
        hp = _hparams(editor, method, MODEL)
        if hp is None:
            print(f"{method:<7} skipped: no shipped hyper-parameters for {MODEL}")
            continue
        ratios, agrees, refused = [], [], 0
        for r in tqdm(reqs, desc=f"{method} single edits", leave=False):
            handle = editor.edit(r, method, hp)
            try:
                after = guard.probe(editor.model, editor.tokenizer)
            finally:
                editor.rollback(handle)
            ratios.append(guard.ratio(base, after))
            agrees.append(guard.agreement(base, after))
            refused += guard.refuses(base, after)
        print(f"{method:<7} {len(reqs):>5} {statistics.median(ratios):12.3f} {max(ratios):9.3f} "
              f"{statistics.median(agrees):12.3f} {min(agrees):9.3f} {refused:>7}")


def sequential_table(editor: Any, guard: Any, method: str, n: int, every: int = 1,
                     act: bool = True, order: str = "interleaved") -> None:
    """``n`` edits in a row; a row printed for every ``every``-th edit (and the first
    refused one). With ``act``, the same edits again with the guard acting (see
    :func:`guarded_run`), once per rule, summarized in a line each."""
    from tqdm.auto import tqdm

    hp = _hparams(editor, method, MODEL)
    if hp is None:
        print(f"\n{method}: skipped, no shipped hyper-parameters for {MODEL}")
        return
    reqs = _requests(n, order)
    unedited = previous = guard.probe(editor.model, editor.tokenizer)
    k_of = len(guard.prompts)
    print(f"\nSequential {method} edits on {MODEL} ({hp.name}; cases in {order} order; "
          f"unedited perplexity {unedited.perplexity:.3f})")
    print(f"{'edit':>4} {'ppl':>9} {'ratio/prev':>10} {'ratio/unedited':>14} "
          f"{'agree/prev':>10} {'agree/unedited':>14} {'refused':>7}  first changed answer")
    first_refused = None
    for i, r in enumerate(tqdm(reqs, desc=f"{method} sequential", leave=False), start=1):
        editor.edit(r, method, hp)
        after = guard.probe(editor.model, editor.tokenizer)
        refused = guard.refuses(previous, after)
        changed = next((f"{p!r}: {a!r} -> {b!r}" for p, a, b in
                        zip(guard.prompts, unedited.answers, after.answers) if a != b), "")
        row = (f"{i:>4} {after.perplexity:9.3f} {guard.ratio(previous, after):10.3f} "
               f"{guard.ratio(unedited, after):14.3f} "
               f"{round(guard.agreement(previous, after) * k_of):>7}/{k_of} "
               f"{round(guard.agreement(unedited, after) * k_of):>11}/{k_of} "
               f"{'yes' if refused else 'no':>7}  {changed}")
        if refused and first_refused is None:
            first_refused = i
        if i % every == 0 or i == 1 or (refused and first_refused == i):
            print(row)
        previous = after
    editor.rollback_all()
    if guard.probe(editor.model, editor.tokenizer) != unedited:
        print("warning: after rolling every edit back the probe differs from the unedited one")
    print(f"first edit the guard refuses (against the probe before it): "
          f"{first_refused if first_refused is not None else 'none'}")
    if not act:
        return
    for rule in ("previous", "unedited"):
        kept, refused, final = guarded_run(editor, guard, method, hp, reqs, unedited, rule)
        shown = ", ".join(map(str, refused[:12])) + (" ..." if len(refused) > 12 else "")
        against = "before each edit" if rule == "previous" else "of the unedited model"
        print(f"with the guard acting, against the probe {against}: "
              f"{kept} of {len(reqs)} edits kept, {len(refused)} refused ({shown or 'none'}); "
              f"then perplexity ratio to unedited {guard.ratio(unedited, final):.3f}, agreement "
              f"{round(guard.agreement(unedited, final) * k_of)}/{k_of}")


def guarded_run(editor: Any, guard: Any, method: str, hp: Path, reqs: Sequence[Any],
                unedited: Any, rule: str) -> tuple[int, list[int], Any]:
    """The edits in a row with the guard acting: a refused edit is rolled back and the next
    one is made on the model as it was. ``rule``: compare with the probe before each edit
    (``previous``) or with the probe of the unedited model (``unedited``). Returns the
    number kept, the refused edits' numbers and the final probe; rolls everything back."""
    from tqdm.auto import tqdm

    previous, kept, refused = unedited, 0, []
    for i, r in enumerate(tqdm(reqs, desc=f"{method} guarded ({rule})", leave=False), start=1):
        handle = editor.edit(r, method, hp)
        after = guard.probe(editor.model, editor.tokenizer)
        if guard.refuses(previous if rule == "previous" else unedited, after):
            editor.rollback(handle)
            refused.append(i)
        else:
            kept += 1
            previous = after
    editor.rollback_all()
    return kept, refused, previous


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=10, help="MEND edits in a row")
    parser.add_argument("--rome-sequential", type=int, default=100, help="ROME edits in a row")
    parser.add_argument("--single", type=int, default=20, help="single edits per method")
    parser.add_argument("--methods", default="rome,memit,ft,mend",
                        help="methods of the single-edit table")
    parser.add_argument("--repeats", type=int, default=5, help="probes timed per model")
    parser.add_argument("--rome-edits", type=int, default=3, help="ROME edits timed per model")
    parser.add_argument("--smollm2", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--act", action=argparse.BooleanOptionalAction, default=True,
                        help="also run each sequence with the guard acting (refused edits undone)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sys.stdout.reconfigure(line_buffering=True)
    from editmethods import Editor
    from editmethods.guard import Guard

    guard = Guard()
    if args.repeats:
        cost_table(guard, args.repeats, args.rome_edits, args.smollm2)
    editor = Editor.from_pretrained(MODEL)
    if args.single:
        single_table(editor, guard, [m for m in args.methods.split(",") if m.strip()], args.single)
    if args.sequential:
        for order in ("file", "interleaved"):
            sequential_table(editor, guard, "mend", args.sequential, act=args.act, order=order)
    if args.rome_sequential:
        sequential_table(editor, guard, "rome", args.rome_sequential,
                         every=max(1, args.rome_sequential // 20), act=args.act)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed of ROME and MEMIT on a reference model: where the time goes, and how it grows.

    python benchmarks/rome_memit_speed.py --model testbed-gpt2 [--rome-edits 10]
        [--memit-sizes 10,100,1000] [--z-compare 100]

Prints three tables (medians; ratios measured in the same run):

1. ROME, seconds per edit with the statistics cached, against the *floor*: the forward and
   backward passes the edit strictly needs (one forward for the keys, and one
   forward+backward over the v* batch per optimization step it took), timed on their own.
2. MEMIT, seconds for batches of 10, 100 and 1000 edits (cases are drawn from every split;
   the statistics are cached first), and seconds per edit: how cost grows with the batch.
3. MEMIT's z optimized for a whole batch together against one edit at a time (the reference
   code's way), on the same batch: seconds and the efficacy of the resulting edit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _requests(n: int) -> list:
    from editmethods.loaders import load_requests

    out: list = []
    for split in ("test", "val", "train"):
        if len(out) >= n:
            break
        try:
            out += load_requests(f"pkg:editmethods_testbed/data/{split}.json")
        except Exception:  # a split that is absent: use the others
            continue
    from rome_memit_eval import interleave_subjects

    seen, unique = set(), []
    for r in interleave_subjects(out):  # distinct subjects first, as in the evaluation  # one target per prompt in a batch
        if r.prompt not in seen:
            seen.add(r.prompt)
            unique.append(r)
    return unique[:n]


def _fwd_bwd_floor(editor: Any, request: Any, hp: Any, steps: int, repeats: int = 5) -> float:
    """Seconds of the passes a ROME edit needs: a forward over the key contexts, and
    ``steps`` forward+backward passes over the v* rows (timed on their own)."""
    import torch
    from editmethods_rome.contexts import generate_prefixes
    from editmethods_rome.keys import pad_rows
    from editmethods_rome.values import build_rows
    from editmethods.scoring import pad_id

    model, tok = editor.model, editor.tokenizer
    prefixes = generate_prefixes(model, tok, hp.context_template_length_params, seed=hp.context_seed)
    rows = build_rows(tok, [request], prefixes, hp.fact_token, "{} is a")
    ids, mask = pad_rows([r.ids for r in rows], pad_id(tok), torch.device("cpu"))
    key_ids, key_mask = pad_rows([tok(p + request.prompt).input_ids for p in prefixes],
                                 pad_id(tok), torch.device("cpu"))
    site = editor.architecture.module(model, "mlp_out", hp.layer)
    delta = torch.zeros(site.weight.shape[1 if type(site).__name__ == "Conv1D" else 0],
                        requires_grad=True)

    def one_step() -> float:
        start = time.perf_counter()
        # δ enters where v* does (the edit layer's MLP output): the same backward pass
        hook = site.register_forward_hook(lambda m, a, o: o + delta)
        try:
            logits = model(input_ids=ids, attention_mask=mask).logits
            logits.float().log_softmax(-1).mean().backward()
        finally:
            hook.remove()
        return time.perf_counter() - start

    def key_pass() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model(input_ids=key_ids, attention_mask=key_mask)
        return time.perf_counter() - start

    for p in model.parameters():
        p.requires_grad_(False)
    try:
        one_step()
        step = statistics.median(one_step() for _ in range(repeats))
        key = statistics.median(key_pass() for _ in range(repeats))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return key + steps * step


def rome_table(editor: Any, hp_path: Path, n: int) -> None:
    from editmethods.hparams import load_hparams
    from editmethods_rome import ROMEHyperParams

    hp = load_hparams(ROMEHyperParams, hp_path, method="rome")
    reqs = _requests(n + 1)
    editor.rollback(editor.edit(reqs[0], "rome", hp))  # statistics and prefixes cached
    rows = []
    for r in reqs[1 : n + 1]:
        handle = editor.edit(r, "rome", hp)
        editor.rollback(handle)
        steps = int(handle.update.meta["v_steps"])
        floor = _fwd_bwd_floor(editor, r, hp, max(steps, 1))
        rows.append((handle.seconds, floor, steps))
    sec = statistics.median(x[0] for x in rows)
    floor = statistics.median(x[1] for x in rows)
    steps = statistics.median(x[2] for x in rows)
    print("\nROME (statistics cached)")
    print(f"{'edits':>6} {'s/edit':>8} {'floor s':>8} {'ratio':>6} {'v* steps':>8}")
    print(f"{len(rows):>6} {sec:8.3f} {floor:8.3f} {sec / floor:6.2f} {steps:8.1f}")


def memit_tables(editor: Any, hp_path: Path, sizes: list[int], z_compare: int) -> None:
    import attrs
    from editmethods.hparams import load_hparams
    from editmethods_memit import MEMITHyperParams

    hp = load_hparams(MEMITHyperParams, hp_path, method="memit")
    reqs = _requests(max(sizes + [z_compare]))
    sys.stdout.reconfigure(line_buffering=True)
    editor.rollback(editor.edit(reqs[:2], "memit", hp))  # statistics cached
    if sizes:
        print("\nMEMIT (statistics cached)")
        print(f"{'batch':>6} {'seconds':>8} {'s/edit':>8} {'z s':>8} {'efficacy':>9}")
    for size in sizes:
        batch = reqs[:size]
        handle = editor.edit(batch, "memit", hp)
        eff = editor.evaluate(batch, metrics=["efficacy"])["efficacy"].value
        editor.rollback(handle)
        print(f"{len(batch):>6} {handle.seconds:8.2f} {handle.seconds / len(batch):8.3f} "
              f"{handle.update.meta['seconds_z']:8.2f} {eff:9.3f}")
    if not z_compare:
        return
    batch = reqs[:z_compare]
    print(f"\nMEMIT z: batched vs one at a time (batch of {len(batch)})")
    print(f"{'z mode':>10} {'z s':>8} {'total s':>8} {'efficacy':>9}")
    times = {}
    for mode in ("batched", "sequential"):
        handle = editor.edit(batch, "memit", attrs.evolve(hp, z_mode=mode))
        eff = editor.evaluate(batch, metrics=["efficacy"])["efficacy"].value
        editor.rollback(handle)
        times[mode] = handle.update.meta["seconds_z"]
        print(f"{mode:>10} {times[mode]:8.2f} {handle.seconds:8.2f} {eff:9.3f}")
    print(f"speed-up of batched z: {times['sequential'] / times['batched']:.1f}x")


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--rome-edits", type=int, default=10)
    parser.add_argument("--memit-sizes", default="10,100,1000")
    parser.add_argument("--z-compare", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from editmethods import Editor
    from editmethods_memit import hparams_path as memit_hp
    from editmethods_rome import hparams_path as rome_hp

    editor = Editor.from_pretrained(args.model)
    if args.rome_edits:
        rome_table(editor, rome_hp(args.model), args.rome_edits)
    sizes = [int(s) for s in args.memit_sizes.split(",") if s.strip()]
    if sizes or args.z_compare:
        memit_tables(editor, memit_hp(args.model), sizes, args.z_compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed of ROME, MEMIT, statistics and causal tracing on a model: where the time goes.

    python benchmarks/rome_memit_speed.py --model testbed-gpt2 [--rome-edits 10]
        [--memit-sizes 10,100,1000] [--z-compare 100]
    python benchmarks/rome_memit_speed.py --model smollm2-135m \
        --data ../shared/data/counterfact-val.json --memit-sizes 10,100 --z-compare 10

Prints these tables (medians; ratios measured in the same run):

1. ROME, seconds per edit with the statistics cached, against the *floor*: the passes the
   edit strictly needs, timed on their own: one forward for the keys, the one-off cached
   lower part of the v* rows, and per optimization step it took one forward+backward of the
   layers above the edit over the positions from the subject on, with logits only where the
   loss reads them (what the edit runs). Beside it, the same steps as full-model passes
   (every layer, every position, full logits: how v* was computed before), and their ratio.
2. MEMIT, seconds for batches of 10, 100 and 1000 edits (the statistics are cached first),
   and seconds per edit: how cost grows with the batch.
3. MEMIT's z optimized for a whole batch together against one edit at a time (the reference
   code's way), on the same batch: seconds and the efficacy of the resulting edit.
4. Statistics: tokens per second of the second-moment pass for the ROME layer against a plain
   forward pass of the whole model over the same texts.
5. Causal tracing: seconds for the three kinds of trace of a few prompts.

Cases come from ``--data`` (default: the testbed's splits), the first ones with distinct
prompts; hyper-parameters are the packages' shipped files for ``--model``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _requests(n: int, data: str | None = None) -> list:
    from editmethods.evaluation.loaders import load_requests

    out: list = []
    for split in ((data,) if data else ("test", "val", "train")):
        if len(out) >= n:
            break
        try:
            out += load_requests(split if data else f"pkg:editmethods_testbed/data/{split}.json")
        except Exception:  # a split that is absent: use the others
            if data:
                raise
            continue
    from rome_memit_eval import interleave_subjects

    seen, unique = set(), []
    for r in interleave_subjects(out):  # distinct subjects first, as in the evaluation  # one target per prompt in a batch
        if r.prompt not in seen:
            seen.add(r.prompt)
            unique.append(r)
    return unique[:n]


def _floors(editor: Any, request: Any, hp: Any, steps: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds of the passes a ROME edit needs: ``(floor, full)``.

    ``floor``: a forward over the key contexts up to the edit layer, the one-off lower part
    of the v* rows, and ``steps`` forward+backward passes of what δ changes (the layers above
    the edit, the positions from the subject on, logits where the loss reads them).
    ``full``: the key forward and ``steps`` forward+backward passes of the whole model over
    the v* rows (every layer, position and logit)."""
    import torch

    from editmethods.scoring import pad_id
    from editmethods.toolkit.tracing import trace
    from editmethods_rome.contexts import generate_prefixes
    from editmethods_rome.keys import pad_rows
    from editmethods_rome.upper_pass import UpperPass
    from editmethods_rome.values import _batch_index, build_rows

    model, tok, arch = editor.model, editor.tokenizer, editor.architecture
    prefixes = generate_prefixes(model, tok, hp.context_template_length_params, seed=hp.context_seed)
    rows = build_rows(tok, [request], prefixes, hp.fact_token, "{} is a")
    cpu = torch.device("cpu")
    ids, mask = pad_rows([r.ids for r in rows], pad_id(tok), cpu)
    key_ids, key_mask = pad_rows([tok(p + request.prompt).input_ids for p in prefixes],
                                 pad_id(tok), cpu)
    module = arch.path("mlp_out", hp.layer)
    site = editor.architecture.module(model, "mlp_out", hp.layer)
    b = _batch_index(rows, list(range(len(rows))), cpu, 1)
    sites = [(b["tok_k"], b["tok_pos"]), (b["kl_k"], b["kl_pos"])]
    sel = torch.arange(len(rows))

    def timed(fn: Any) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def full_step() -> None:
        delta = torch.zeros(len(rows), upper.init.shape[-1], requires_grad=True)
        hook = site.register_forward_hook(
            lambda m, a, o: o.index_put((sel, torch.tensor([r.pos for r in rows])), delta,
                                        accumulate=True))
        try:
            logits = model(input_ids=ids, attention_mask=mask).logits
            logits.float().log_softmax(-1).mean().backward()
        finally:
            hook.remove()

    def lower() -> Any:
        return UpperPass.build(model, arch, module, [r.ids for r in rows], [r.pos for r in rows],
                               pad_id(tok))

    upper = lower()

    def fast_step() -> None:
        delta = torch.zeros(len(rows), upper.init.shape[-1], requires_grad=True)
        tok_logits, kl_logits = upper.logits(sel, delta, sites)
        (tok_logits.float().log_softmax(-1).mean() + kl_logits.float().log_softmax(-1).mean()).backward()

    def key_pass() -> None:
        with torch.no_grad(), trace(model, [module], stop_after=module):
            model(input_ids=key_ids, attention_mask=key_mask)

    for p in model.parameters():
        p.requires_grad_(False)
    try:
        full_step(), fast_step()  # warm-up
        key = statistics.median(timed(key_pass) for _ in range(repeats))
        setup = statistics.median(timed(lower) for _ in range(repeats))
        fast = statistics.median(timed(fast_step) for _ in range(repeats))
        full = statistics.median(timed(full_step) for _ in range(repeats))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return key + setup + steps * fast, key + steps * full


def rome_table(editor: Any, hp_path: Path, n: int, data: str | None = None) -> None:
    from editmethods.hparams import load_hparams
    from editmethods_rome import ROMEHyperParams

    hp = load_hparams(ROMEHyperParams, hp_path, method="rome")
    reqs = _requests(n + 1, data)
    editor.rollback(editor.edit(reqs[0], "rome", hp))  # statistics and prefixes cached
    rows = []
    for r in reqs[1 : n + 1]:
        handle = editor.edit(r, "rome", hp)
        editor.rollback(handle)
        steps = int(handle.update.meta["v_steps"])
        floor, full = _floors(editor, r, hp, max(steps, 1))
        rows.append((handle.seconds, floor, full, steps))
    sec = statistics.median(x[0] for x in rows)
    floor = statistics.median(x[1] for x in rows)
    full = statistics.median(x[2] for x in rows)
    steps = statistics.median(x[3] for x in rows)
    print(f"\nROME (statistics cached; {hp_path.name})")
    print(f"{'edits':>6} {'s/edit':>8} {'floor s':>8} {'ratio':>6} {'full-model s':>13} "
          f"{'floor/full':>10} {'v* steps':>8}")
    print(f"{len(rows):>6} {sec:8.3f} {floor:8.3f} {sec / floor:6.2f} {full:13.3f} "
          f"{floor / full:10.2f} {steps:8.1f}")


def memit_tables(editor: Any, hp_path: Path, sizes: list[int], z_compare: int,
                 data: str | None = None) -> None:
    import attrs

    from editmethods.hparams import load_hparams
    from editmethods_memit import MEMITHyperParams

    hp = load_hparams(MEMITHyperParams, hp_path, method="memit")
    reqs = _requests(max(sizes + [z_compare]), data)
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


def stats_table(editor: Any, hp_path: Path, repeats: int = 3) -> None:
    """Second-moment tokens/s for the ROME layer against a plain forward of the whole model."""
    import torch

    from editmethods.hparams import load_hparams
    from editmethods.toolkit.stats import resolve_corpus, second_moment
    from editmethods_rome import ROMEHyperParams

    hp = load_hparams(ROMEHyperParams, hp_path, method="rome")
    model, tok = editor.model, editor.tokenizer
    module = editor.architecture.path("mlp_out", hp.layer)
    corpus = hp.mom2_dataset
    if corpus.startswith("npz:"):  # precomputed: time a sampled corpus instead
        corpus = "model-samples"
    texts = resolve_corpus(corpus, 256, model=model, tokenizer=tok).texts(256)
    rows = [tok(t, truncation=True, max_length=hp.mom2_max_length).input_ids for t in texts]
    n_tokens = sum(len(r) for r in rows)

    def stats_pass() -> float:
        start = time.perf_counter()
        second_moment(model, tok, module, texts, n_samples=len(texts), cache=False,
                      progress=False, max_length=hp.mom2_max_length,
                      token_budget=hp.mom2_token_budget)
        return time.perf_counter() - start

    def forward_pass() -> float:
        from editmethods.toolkit.stats import _batches

        start = time.perf_counter()
        with torch.no_grad():
            for batch in _batches([len(r) for r in rows], max(hp.mom2_token_budget, hp.mom2_max_length)):
                width = max(len(rows[i]) for i in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros_like(ids)
                for j, i in enumerate(batch):
                    ids[j, : len(rows[i])] = torch.tensor(rows[i])
                    mask[j, : len(rows[i])] = 1
                model(input_ids=ids, attention_mask=mask)
        return time.perf_counter() - start

    stats_s = statistics.median(stats_pass() for _ in range(repeats))
    fwd_s = statistics.median(forward_pass() for _ in range(repeats))
    print(f"\nStatistics ({module}, {len(texts)} texts, {n_tokens} tokens)")
    print(f"{'stats tok/s':>12} {'forward tok/s':>14} {'ratio':>6}")
    print(f"{n_tokens / stats_s:12.0f} {n_tokens / fwd_s:14.0f} {fwd_s / stats_s:6.2f}")


def trace_table(editor: Any, requests: list, n: int) -> None:
    """Seconds for the three kinds of causal trace of each of ``n`` prompts."""
    from editmethods.toolkit.causal_trace import trace_all

    times = []
    for r in requests[:n]:
        start = time.perf_counter()
        trace_all(editor.model, editor.tokenizer, r.prompt, r.subject,
                  architecture=editor.architecture, progress=False)
        times.append(time.perf_counter() - start)
    print(f"\nCausal tracing (hidden, mlp and attn; 10 noise samples; {len(times)} prompts)")
    print(f"{'prompts':>8} {'s/prompt':>9}")
    print(f"{len(times):>8} {statistics.median(times):9.1f}")


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--data", default=None, help="cases (default: the testbed's splits)")
    parser.add_argument("--rome-edits", type=int, default=10)
    parser.add_argument("--memit-sizes", default="10,100,1000")
    parser.add_argument("--z-compare", type=int, default=100)
    parser.add_argument("--stats", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--trace-prompts", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from editmethods import Editor
    from editmethods_memit import hparams_path as memit_hp
    from editmethods_rome import hparams_path as rome_hp

    sys.stdout.reconfigure(line_buffering=True)
    editor = Editor.from_pretrained(args.model)
    if args.rome_edits:
        rome_table(editor, rome_hp(args.model), args.rome_edits, args.data)
    sizes = [int(s) for s in args.memit_sizes.split(",") if s.strip()]
    if sizes or args.z_compare:
        memit_tables(editor, memit_hp(args.model), sizes, args.z_compare, args.data)
    if args.stats:
        stats_table(editor, rome_hp(args.model))
    if args.trace_prompts:
        trace_table(editor, _requests(args.trace_prompts, args.data), args.trace_prompts)
    return 0


if __name__ == "__main__":
    sys.exit(main())

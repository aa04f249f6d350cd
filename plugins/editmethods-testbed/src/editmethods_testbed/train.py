"""Tokenizer, model construction, training and measurement of the reference models.

Imports torch/transformers/tokenizers, never :mod:`editmethods`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from editmethods_testbed.world import RELATIONS, World, demo_text

SPECIAL = {"eos": "<|endoftext|>", "pad": "<pad>"}

# Architectures (kept small: <= 20 MB fp32, trainable in minutes on 2 CPU cores).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": {"n_layer": 6, "d": 128, "n_head": 4},
    "llama": {"n_layer": 4, "d": 128, "n_head": 4, "ffn": 352},
}


# -- tokenizer ------------------------------------------------------------------------------


def train_tokenizer(world, vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on the world's text, as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[SPECIAL["eos"], SPECIAL["pad"]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(world.tokenizer_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL["eos"],
        eos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"],
        unk_token=None,
    )
    fast.padding_side = "right"
    return fast


def tokenization_stats(tok, world: World) -> dict:
    """Tokens per object / subject, and how many people own a token no one else has."""
    obj_lens = {}
    for rel, pool in world.pools.items():
        obj_lens[rel] = max(len(tok(" " + o).input_ids) for o in pool)
    piece_owner: dict[int, set] = {}
    name_lens = []
    for p in world.people:
        ids = tok(" " + p).input_ids
        name_lens.append(len(ids))
        for i in ids:
            piece_owner.setdefault(i, set()).add(p)
    unique_piece_people = sum(
        1 for p in world.people if any(len(piece_owner[i]) == 1 for i in tok(" " + p).input_ids)
    )
    last_share: dict[int, list[str]] = {}  # last token id -> the people whose name ends on it
    for p in world.people:
        last_share.setdefault(tok(" " + p).input_ids[-1], []).append(p)
    return {
        "vocab_size": len(tok),
        "max_object_tokens_per_relation": obj_lens,
        "person_name_tokens_mean": sum(name_lens) / len(name_lens),
        "person_name_tokens_min": min(name_lens),
        "people_with_a_token_of_their_own": unique_piece_people,
        "people_per_last_token_mean": len(world.people) / len(last_share),
        "people_per_last_token_max": max(len(v) for v in last_share.values()),
    }


# -- model ----------------------------------------------------------------------------------


def make_model(arch: str, vocab_size: int, tok, n_positions: int = 128, **over):
    import torch  # noqa: F401
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    cfg = dict(ARCH_DEFAULTS[arch])
    cfg.update(over)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if arch == "gpt2":
        gpt2_config = GPT2Config(
            vocab_size=vocab_size, n_positions=n_positions, n_embd=cfg["d"], n_layer=cfg["n_layer"],
            n_head=cfg["n_head"], n_inner=cfg.get("ffn"), resid_pdrop=0.0, embd_pdrop=0.0,
            attn_pdrop=0.0, **ids,
        )
        return GPT2LMHeadModel(gpt2_config)
    if arch == "llama":
        llama_config = LlamaConfig(
            vocab_size=vocab_size, hidden_size=cfg["d"], intermediate_size=cfg.get("ffn", 4 * cfg["d"]),
            num_hidden_layers=cfg["n_layer"], num_attention_heads=cfg["n_head"],
            num_key_value_heads=cfg["n_head"], max_position_embeddings=n_positions,
            tie_word_embeddings=True, rms_norm_eps=1e-5, **ids,
        )
        return LlamaForCausalLM(llama_config)
    raise ValueError(f"unknown arch {arch!r}: use 'gpt2' or 'llama'")


def key_module(model, layer: int):
    """The module whose INPUT is the MLP key (GPT-2 c_proj / LLaMA down_proj)."""
    if model.config.model_type == "gpt2":
        return model.transformer.h[layer].mlp.c_proj
    return model.model.layers[layer].mlp.down_proj


# -- packing --------------------------------------------------------------------------------


class Encoded:
    """A unit tokenized in its forms: at the start of a sequence, after " ", after a newline.

    Each form is ``(ids, weights, subject)``: ``subject`` is the ``(first, last)`` token index
    of the unit's subject in that form, or ``None``.
    """

    __slots__ = ("kind", "first", "mid", "mid_nl")

    def __init__(self, kind, first, mid, mid_nl=None):
        self.kind, self.first, self.mid, self.mid_nl = kind, first, mid, mid_nl


def _subject_span(offsets, text: str, subject: str | None):
    """Token indices (first, last) of ``subject`` in ``text`` from the tokenizer's offsets."""
    if not subject or subject not in text:
        return None
    start = text.index(subject)
    end = start + len(subject)
    hits = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
    return (hits[0], hits[-1]) if hits else None


def encode_units(tok, units) -> list[Encoded]:
    """Tokenize units in three forms: first in a sequence, after " " and after a newline.

    Facts are joined by a space or a newline (half each), so that sentence-initial subjects
    (tokenized without the leading-space marker) are trained as often as mid-text ones.
    A unit is ``(kind, pieces)`` or ``(kind, pieces, subject)``; the subject, when given, is
    looked up in the first piece and its token span kept (see :class:`Encoded`).
    """
    out = []
    texts: dict[str, list[str]] = {"first": [], "mid": [], "mid_nl": []}
    meta = []
    for kind, pieces, *_ in units:
        seps = {"first": "", "mid": " " if kind == "fact" else "\n\n", "mid_nl": "\n"}
        for form, prefix in seps.items():
            for j, (text, _) in enumerate(pieces):
                texts[form].append((prefix + text) if j == 0 else text)
        meta.append(len(pieces))
    encs = [tok(texts[f], add_special_tokens=False, return_offsets_mapping=True)
            for f in ("first", "mid", "mid_nl")]
    i = 0
    for (kind, pieces, *rest), n in zip(units, meta):
        subject = rest[0] if rest else None
        forms = []
        for form, enc in zip(("first", "mid", "mid_nl"), encs):
            ids, ws = [], []
            for j in range(n):
                piece = enc.input_ids[i + j]
                ids.extend(piece)
                ws.extend([pieces[j][1]] * len(piece))
            span = _subject_span(enc.offset_mapping[i], texts[form][i], subject)
            forms.append((ids, ws, span))
        out.append(Encoded(kind, forms[0], forms[1], forms[2] if kind == "fact" else forms[1]))
        i += n
    return out


def pack(encoded: Sequence[Encoded], max_len: int, rng: random.Random, pad_id: int):
    """Shuffle units and pack them (facts with facts, demos with demos) into sequences.

    Returns ``(ids, weights, subjects)``: ``subjects[k]`` lists the ``(first, last)`` token
    positions of the subjects in sequence ``k``.
    """
    import torch

    seqs = []
    for kind in ("fact", "demo"):
        items = [e for e in encoded if e.kind == kind]
        rng.shuffle(items)
        cur_ids: list[int] = []
        cur_w: list[float] = []
        cur_s: list[tuple[int, int]] = []
        for e in items:
            ids, ws, span = (e.mid_nl if rng.random() < 0.5 else e.mid) if cur_ids else e.first
            if cur_ids and len(cur_ids) + len(ids) > max_len:
                seqs.append((cur_ids, cur_w, cur_s))
                ids, ws, span = e.first
                cur_ids, cur_w, cur_s = [], [], []
            if span is not None:
                cur_s = cur_s + [(len(cur_ids) + span[0], len(cur_ids) + span[1])]
            cur_ids = cur_ids + ids
            cur_w = cur_w + ws
        if cur_ids:
            seqs.append((cur_ids, cur_w, cur_s))
    rng.shuffle(seqs)
    ids = torch.full((len(seqs), max_len), pad_id, dtype=torch.long)
    wts = torch.zeros((len(seqs), max_len), dtype=torch.float32)
    subjects = []
    for k, (a, w, s) in enumerate(seqs):
        a, w = a[:max_len], w[:max_len]
        ids[k, : len(a)] = torch.tensor(a)
        wts[k, : len(w)] = torch.tensor(w)
        subjects.append([(first, last) for first, last in s if last < max_len])
    return ids, wts, subjects


def subject_attention_mask(subjects: Sequence[Sequence[tuple[int, int]]], length: int, p: float,
                           rng: random.Random):
    """Causal 4-D boolean mask (``[batch, 1, length, length]``, True = may attend) in which,
    for each multi-token subject with probability ``p``, the positions after the subject cannot
    attend to its tokens before the last: what they learn of the subject must then come
    through its last token, where ROME and MEMIT edit (large models resolve subjects there;
    small ones trained without this read the name pieces from the prompt's last position)."""
    import torch

    mask = torch.tril(torch.ones(length, length, dtype=torch.bool)).repeat(len(subjects), 1, 1, 1)
    for b, spans in enumerate(subjects):
        for first, last in spans:
            if last > first and rng.random() < p:
                mask[b, 0, last + 1:, first:last] = False
    return mask


# -- training -------------------------------------------------------------------------------


def train(
    world,
    arch: str = "gpt2",
    seed: int = 0,
    steps: int = 1500,
    batch_size: int = 32,
    max_len: int = 128,
    lr: float = 3e-3,
    demos_per_epoch: int | None = None,
    fact_fraction: float = 0.5,
    vocab_size: int = 2048,
    tok=None,
    progress: bool = True,
    threads: int | None = None,
    bf16: bool = True,
    model_kwargs: dict | None = None,
    log: list | None = None,
    subject_mask_p: float = 0.0,
):
    """Train one reference model on the world. Returns (model, tokenizer, info).

    :param subject_mask_p: with this probability per subject occurrence in a fact sentence,
        later positions may not attend to the subject's earlier tokens
        (:func:`subject_attention_mask`); 0 trains with the plain causal mask.
    """
    import torch
    from tqdm.auto import tqdm

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    mask_rng = random.Random(seed + 1)  # its own stream: the default build is unchanged
    t0 = time.time()
    if tok is None:
        tok = train_tokenizer(world, vocab_size)
    model = make_model(arch, len(tok), tok, n_positions=max_len, **(model_kwargs or {}))
    model.train()
    facts = encode_units(tok, world.fact_units())
    n_fact = max(1, round(fact_fraction * len(facts)))
    n_demo = demos_per_epoch if demos_per_epoch is not None else n_fact // 4
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warm = max(1, min(100, steps // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    step, epoch = 0, 0
    bar = tqdm(total=steps, desc=f"train {arch}", disable=not progress, unit="step")
    losses = []
    while step < steps:
        demos = encode_units(tok, world.demo_units(n_demo, seed * 1000 + epoch))
        ids, wts, subjects = pack(rng.sample(facts, n_fact) + demos, max_len, rng,
                                  tok.pad_token_id)
        epoch += 1
        perm = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed + epoch))
        for b in range(0, len(ids) - batch_size + 1, batch_size):
            if step >= steps:
                break
            idx = perm[b : b + batch_size]
            x, w = ids[idx], wts[idx]
            extra = {}
            if subject_mask_p > 0:
                extra["attention_mask"] = subject_attention_mask(
                    [subjects[int(i)] for i in idx], x.shape[1], subject_mask_p, mask_rng)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=x, **extra).logits
            logp = torch.log_softmax(logits[:, :-1].float(), -1)
            nll = -logp.gather(-1, x[:, 1:, None])[..., 0]
            ww = w[:, 1:]
            loss = (nll * ww).sum() / ww.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{sum(losses[-20:]) / 20:.3f}", epoch=epoch)
                if log is not None:
                    log.append({"step": step, "loss": sum(losses[-20:]) / 20, "t": time.time() - t0})
            bar.update(1)
    bar.close()
    model.eval()
    info = {
        "arch": arch, "seed": seed, "steps": steps, "epochs": epoch, "batch_size": batch_size,
        "max_len": max_len, "lr": lr, "demos_per_epoch": n_demo, "fact_units_per_epoch": n_fact, "fact_units": len(facts), "train_seconds": round(time.time() - t0, 1),
        "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
        "params": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "subject_mask_p": subject_mask_p,
    }
    return model, tok, info


# -- measurement ----------------------------------------------------------------------------


def greedy_correct(model, tok, pairs: Sequence[tuple[str, str]], batch_size: int = 128) -> list[bool]:
    """Whether greedy decoding after each prompt produces ``" " + answer`` exactly.

    Teacher forcing: greedy decoding yields the target iff the argmax at each target
    position equals the target token (given the correct prefix).
    """
    import torch

    out: list[bool] = []
    for b in range(0, len(pairs), batch_size):
        chunk = pairs[b : b + batch_size]
        p_ids = tok([p for p, _ in chunk], add_special_tokens=False).input_ids
        a_ids = tok([" " + a for _, a in chunk], add_special_tokens=False).input_ids
        L = max(len(p) + len(a) for p, a in zip(p_ids, a_ids))
        x = torch.full((len(chunk), L), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(chunk), L), dtype=torch.long)
        for i, (p, a) in enumerate(zip(p_ids, a_ids)):
            x[i, : len(p) + len(a)] = torch.tensor(p + a)
            att[i, : len(p) + len(a)] = 1
        with torch.no_grad():
            pred = model(input_ids=x, attention_mask=att).logits.argmax(-1)
        for i, (p, a) in enumerate(zip(p_ids, a_ids)):
            got = pred[i, len(p) - 1 : len(p) + len(a) - 1].tolist()
            out.append(got == a)
    return out


def _rate(flags: list[bool]) -> float | None:
    return round(100.0 * sum(flags) / len(flags), 2) if flags else None


def measure_recall(model, tok, world: World, seed: int = 0) -> dict:
    """Greedy recall (%) per phrasing category, two-hop and in-context copying."""
    res: dict[str, Any] = {}
    cats: dict[str, list[tuple[str, str]]] = {"trained": [], "heldout": [], "never_trained": []}
    cats_people: dict[str, list[tuple[str, str]]] = {"trained": [], "heldout": [], "never_trained": []}
    for f in world.facts:
        groups = {
            "trained": [f.prompt(t) for t in f.trained_templates()],
            "heldout": [f.prompt(f.heldout_template())],
            "never_trained": [f.prompt(t) for t in f.never_templates()],
        }
        for k, prompts in groups.items():
            cats[k].extend((p, f.object) for p in prompts)
            if f.rel.kind == "person":
                cats_people[k].extend((p, f.object) for p in prompts)
    for k, pairs in cats.items():
        res[f"recall_{k}"] = _rate(greedy_correct(model, tok, pairs))
        res[f"n_{k}"] = len(pairs)
    for k, pairs in cats_people.items():
        res[f"people_recall_{k}"] = _rate(greedy_correct(model, tok, pairs))
    th_trained: list[tuple[str, str]] = []
    th_held: list[tuple[str, str]] = []
    for p in world.people:
        for prompt, ans, trained in world.two_hop(p):
            (th_trained if trained else th_held).append((prompt, ans))
    res["two_hop_trained"] = _rate(greedy_correct(model, tok, th_trained))
    res["two_hop_untrained"] = _rate(greedy_correct(model, tok, th_held))
    res["n_two_hop_untrained"] = len(th_held)
    res.update(measure_in_context(model, tok, world, seed))
    return res


def in_context_cases(world: World, seed: int = 0, splits=("val", "test")) -> dict[str, list[tuple[str, str]]]:
    """In-context cases on people NOT used in demonstrations: copy / update / retain."""
    rng = random.Random(seed + 7)
    cases: dict[str, list[tuple[str, str]]] = {"copy": [], "update_heldout": [], "retain": []}
    people = [p for p in world.people if world.split[p] in splits]
    for p in people:
        for f in world.facts_of(p):
            new = rng.choice([o for o in world.pools[f.relation] if o != f.object])
            t = f.trained_templates()[0]
            fact_prompt = f.prompt(t)
            cases["copy"].append((demo_text(fact_prompt, new, fact_prompt), new))
            cases["update_heldout"].append((demo_text(fact_prompt, new, f.prompt(f.heldout_template())), new))
            g = rng.choice([x for x in world.facts_of(p) if x.relation != f.relation])
            cases["retain"].append((demo_text(fact_prompt, new, g.prompt(g.trained_templates()[0])), g.object))
    return cases


def measure_in_context(model, tok, world: World, seed: int = 0) -> dict:
    return {f"in_context_{k}": _rate(greedy_correct(model, tok, v, batch_size=64))
            for k, v in in_context_cases(world, seed).items()}


def key_distinctness(model, tok, world: World, layers=(0, 1, 2), template: str | None = None,
                     max_subjects: int = 400) -> dict:
    """Mean / max pairwise cosine between people of the MLP key at the subject's last token."""
    import torch

    template = template or RELATIONS["birth_city"].templates[0]
    n_layers = getattr(model.config, "n_layer", None) or model.config.num_hidden_layers
    layers = [layer for layer in layers if layer < n_layers]
    people = world.people[:max_subjects]
    texts = [template.format(p) for p in people]
    last = [len(tok(t[: t.index(p) + len(p)], add_special_tokens=False).input_ids) - 1
            for t, p in zip(texts, people)]
    caps: dict[int, torch.Tensor] = {}
    hooks = []
    for layer in layers:
        def hook(mod, args, layer=layer):
            caps[layer] = args[0].detach().float()
        hooks.append(key_module(model, layer).register_forward_pre_hook(hook))
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    try:
        with torch.no_grad():
            model(**enc)
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, Any] = {}  # per layer its cosine summary, then the template and count
    for layer in layers:
        k = caps[layer][torch.arange(len(people)), torch.tensor(last)]
        k = torch.nn.functional.normalize(k, dim=-1)
        c = k @ k.T
        off = c[~torch.eye(len(people), dtype=torch.bool)]
        out[f"layer{layer}"] = {"mean_cos": round(off.mean().item(), 4), "max_cos": round(off.max().item(), 4),
                            "p99_cos": round(off.quantile(0.99).item(), 4)}
    out["template"] = template
    out["subjects"] = len(people)
    return out


# -- saving ---------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(model, tok, out_dir: str | Path, manifest: dict) -> dict:
    """save_pretrained (safetensors) + tokenizer + manifest.json with file hashes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    files = {}
    for p in sorted(out.iterdir()):
        if p.is_file() and p.name != "manifest.json":
            files[p.name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = dict(manifest)
    manifest["files"] = files
    manifest["total_bytes"] = sum(v["bytes"] for v in files.values())
    save_manifest(out, manifest)
    return manifest


def save_manifest(out_dir: str | Path, manifest: dict) -> None:
    (Path(out_dir) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

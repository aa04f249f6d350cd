"""Train SERAC's counterfactual model and tune its scope classifier's threshold.

The counterfactual model starts as a copy of the base model (same family, same tokenizer)
and learns to answer ``New Fact: {edit}\\nPrompt: {query}`` with the edited answer for queries
in the edit's scope and the old answer for the others (loss on answer tokens only). Two scope
classifiers on the frozen sentence encoder are fitted on the train cases (see
:mod:`editmethods_serac.scope`): the learned one (used by default) and the cosine threshold
that best separates in-scope from out-of-scope queries (balanced accuracy).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from editmethods.architectures import BUILTIN, Architecture, resolve
from editmethods.scoring import model_config, pad_id, target_ids
from editmethods.toolkit.encoder import DEFAULT_ENCODER, get_encoder
from editmethods.toolkit.routing import edit_context
from editmethods_serac.checkpoint import base_fingerprint, save_checkpoint
from editmethods_serac.data import Case
from editmethods_serac.scope import SCOPE_FILE, embed_pairs, scope_pairs, train_learned_scope


@attrs.frozen
class TrainConfig:
    steps: int = 2500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    encoder: str = DEFAULT_ENCODER
    #: cases used to tune the threshold (the rest of the work is cheap)
    threshold_cases: int = 400
    #: share of out-of-scope (retain) examples per batch. SERAC trains its counterfactual
    #: model on in-scope examples; some retain examples keep it answering as before when the
    #: classifier routes an unrelated input to it, but too many teach it to ignore the edit
    #: (measured, attention-only training, 100 edits in memory on the GPT-2 reference model,
    #: cosine routing: no retain examples gave reliability 1.0 and locality 0.92; 4% (one per
    #: batch of 32), 0.97 and 0.935; 10%, 0.91 and 0.96).
    retain_fraction: float = 0.04
    #: which weights train: ``"attention"`` (the attention blocks only; the embeddings and
    #: MLPs, where a model keeps its facts, stay frozen) or ``"all"``. Trained whole, the
    #: model learns to read the edit partly by forgetting the train subjects' facts, which does
    #: not carry over to unseen subjects: their remembered object still wins over the context
    #: (measured on the reference model's test split, 100 edits: reliability 0.83).
    trainable: str = attrs.field(default="attention",
                                 validator=attrs.validators.in_(("attention", "all")))
    #: steps between validations on held-out cases; the best state (see ``selection_key``) is
    #: kept (0 = no validation)
    val_every: int = 100
    #: validation cases used each time
    val_cases: int = 100


Example = tuple[Case, str, "str | None"]  # (case, query, fixed answer or None = the new object)


def examples(cases: Sequence[Case]) -> tuple[list[Example], list[Example]]:
    """In-scope examples (answered with the edit's new object) and out-of-scope ones
    (answered as before)."""
    inside: list[Example] = [(c, q, None) for c in cases for q, _ in c.in_scope]
    outside: list[Example] = [(c, q, a) for c in cases for q, a in c.out_scope]
    return inside, outside


def object_pools(cases: Sequence[Case]) -> dict[str, list[str]]:
    """Objects seen for each relation (new and old), to draw counterfactual objects from."""
    pools: dict[str, set[str]] = {}
    for c in cases:
        pool = pools.setdefault(c.relation, set())
        pool.add(c.target_new)
        if c.target_true:
            pool.add(c.target_true)
    return {k: sorted(v) for k, v in pools.items()}


def render(example: Example, pools: dict[str, list[str]], rng: random.Random) -> tuple[str, str]:
    """(text up to the answer, answer with its leading space), with a freshly drawn new object.

    Each time an example is used, its edit gets a random object of the same relation: with
    the data's fixed objects the model memorizes them as facts of the train subjects instead
    of learning to read the edit (measured: copy accuracy 1.0 on train subjects, 0.72 on
    unseen ones).
    """
    case, query, fixed = example
    pool = [o for o in pools.get(case.relation, ()) if o != case.target_true]
    new = rng.choice(pool) if len(pool) > 1 else case.target_new
    answer = new if fixed is None else fixed
    return f"{edit_context(case.prompt, new)} {query}", " " + answer


def _batch(tokenizer: Any, pairs: Sequence[tuple[str, str]], limit: int | None):
    rows, spans = [], []
    for text, answer in pairs:
        p, t = target_ids(tokenizer, text, answer)
        if limit is not None and len(p) + len(t) > limit:
            continue  # never cut a training query: skip what does not fit
        rows.append(p + t)
        spans.append((len(p), len(t)))
    if not rows:
        return None
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id(tokenizer), dtype=torch.long)
    mask = torch.zeros_like(ids)
    weights = torch.zeros(ids.shape, dtype=torch.float32)
    for i, (r, (n_p, n_t)) in enumerate(zip(rows, spans)):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        weights[i, n_p : n_p + n_t] = 1.0
    return ids, mask, weights


def trainable_parameters(model: torch.nn.Module, which: str,
                         architecture: Architecture | None = None) -> list[torch.nn.Parameter]:
    """The parameters to train: all, or those of every layer's attention block."""
    if which == "all":
        return list(model.parameters())
    arch = architecture or resolve(model, BUILTIN)
    params: list[torch.nn.Parameter] = []
    for layer in range(arch.n_layers(model)):
        params += list(arch.module(model, "attn", layer).parameters())
    return params


@torch.no_grad()
def validate(model: torch.nn.Module, tokenizer: Any, cases: Sequence[Case], limit: int | None = None,
             batch_size: int = 64) -> dict[str, float]:
    """Greedy exact-match of the counterfactual model on held-out cases: in-scope queries
    (prompt and paraphrases) must give the edit's object, out-of-scope ones their own answer."""
    def accuracy(pairs: list[tuple[str, str]]) -> float:
        hits = total = 0
        for start in range(0, len(pairs), batch_size):
            batch = _batch(tokenizer, pairs[start : start + batch_size], limit)
            if batch is None:
                continue
            ids, mask, weights = (t.to(next(model.parameters()).device) for t in batch)
            pred = model(input_ids=ids, attention_mask=mask).logits[:, :-1].argmax(-1)
            w = weights[:, 1:] > 0
            right = ((pred == ids[:, 1:]) | ~w).all(dim=1)
            hits += int(right.sum())
            total += len(right)
        return hits / total if total else float("nan")

    inside = [(f"{edit_context(c.prompt, c.target_new)} {q}", " " + c.target_new)
              for c in cases for q, _ in c.in_scope]
    outside = [(f"{edit_context(c.prompt, c.target_new)} {q}", " " + a)
               for c in cases for q, a in c.out_scope[:2]]
    result = {"in_scope": accuracy(inside)}
    if outside:
        result["out_of_scope"] = accuracy(outside)
    values = [v for v in result.values() if v == v]
    result["score"] = sum(values) / len(values)
    return result


def selection_key(result: dict[str, float]) -> tuple[float, float]:
    """How validation states are ranked: in-scope accuracy on unseen subjects first (to 0.01),
    out-of-scope retention as the tie-breaker.

    The counterfactual model is consulted only for queries the scope classifier routes to an
    edit, so reading the edit is its job; retention matters only for the few misrouted
    queries. Ranking by the mean of the two picked the untrained state on the rebuilt GPT-2
    reference model (step 0: in-scope 0.76, retention 0.56; step 2,100: 1.00, 0.27), and the
    bundled checkpoint then failed SERAC's reliability target (0.86 with 100 edits).
    """
    out = result.get("out_of_scope", 0.0)
    return (round(result["in_scope"], 2), out if out == out else 0.0)


def train_counterfactual(base: torch.nn.Module, tokenizer: Any, cases: Sequence[Case],
                         config: TrainConfig, *, progress: bool = True,
                         log: Callable[[str], None] | None = None,
                         architecture: Architecture | None = None,
                         val: Sequence[Case] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A counterfactual model initialised from ``base`` and trained on ``cases``.

    With ``val`` (cases whose subjects are not in ``cases``), the model is validated every
    ``config.val_every`` steps and the best state is kept: a small model can learn to read the
    edit for the train subjects only (measured on the GPT-2 reference model: copy accuracy
    1.00 on train subjects, 0.65 on unseen ones after 2,500 steps, against 0.92 untrained).
    """
    from tqdm.auto import tqdm

    from editmethods.toolkit.routing import max_positions

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = copy.deepcopy(base)
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    params = trainable_parameters(model, config.trainable, architecture)
    for p in params:
        p.requires_grad_(True)
    inside, outside = examples(cases)
    if not inside:
        raise ValueError("no in-scope training examples in the given cases")
    limit = max_positions(model)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warm = max(1, config.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / config.steps))))
    losses: list[float] = []
    n_out = round(config.batch_size * config.retain_fraction) if outside else 0
    # per kind: the examples, and the indices left in this shuffled pass over them
    streams: dict[str, tuple[list[Example], list[int]]] = {"in": (inside, []), "out": (outside, [])}
    pools = object_pools(cases)

    def draw(kind: str, n: int) -> list[tuple[str, str]]:
        pool, order = streams[kind]
        out = []
        for _ in range(n):
            if not order:  # a fresh shuffled pass over the pool
                order.extend(range(len(pool)))
                rng.shuffle(order)
            out.append(render(pool[order.pop()], pools, rng))
        return out

    val_cases = list(val or [])[: config.val_cases]
    best: dict[str, Any] = {}

    def checkpoint(step: int) -> None:
        if not val_cases or not config.val_every:
            return
        model.eval()
        result = validate(model, tokenizer, val_cases, limit)
        model.train()
        history.append({"step": step, **{k: round(v, 4) for k, v in result.items()}})
        key = selection_key(result)
        if not best or key > best["key"]:
            best.update(key=key, step=step,
                        state={id(p): p.detach().clone() for p in params})

    history: list[dict[str, Any]] = []
    start = time.time()
    checkpoint(0)
    bar = tqdm(range(config.steps), desc="train serac", unit="step", disable=not progress)
    for step in bar:
        chunk = draw("in", config.batch_size - n_out) + draw("out", n_out)
        batch = _batch(tokenizer, chunk, limit)
        if batch is None:
            continue
        ids, mask, weights = (t.to(device) for t in batch)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                ids[:, 1:].reshape(-1), reduction="none")
        w = weights[:, 1:].reshape(-1)
        loss = (nll * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}",
                            val=f"{history[-1]['score']:.3f}" if history else "-")
        if config.val_every and (step + 1) % config.val_every == 0:
            checkpoint(step + 1)
    if config.val_every and config.steps % config.val_every:
        checkpoint(config.steps)
    model.eval()
    with torch.no_grad():
        if best:
            for p in params:
                p.copy_(best["state"][id(p)])
    for p in model.parameters():
        p.requires_grad_(False)
    info: dict[str, Any] = {"steps": config.steps, "examples_in_scope": len(inside), "examples_out_of_scope": len(outside), "seconds": round(time.time() - start, 1),
            "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:]))}
    if best:
        info.update(best_step=best["step"], best_validation=next(h for h in history if h["step"] == best["step"]),
                    validation=history)
    if log:
        log(f"counterfactual model: { {k: v for k, v in info.items() if k != 'validation'} }")
    return model, info


def tune_threshold(cases: Sequence[Case], encoder_name: str = DEFAULT_ENCODER,
                   max_cases: int = 400, seed: int = 0) -> dict[str, Any]:
    """The cosine threshold that best separates in-scope from out-of-scope queries.

    Queries are scored as the metrics present them: with their answer appended (teacher
    forcing) and without (generation), against their own edit's descriptor.
    """
    rng = random.Random(seed)
    picked = list(cases)
    rng.shuffle(picked)
    picked = picked[:max_cases]
    pos_pairs, neg_pairs = scope_pairs(picked)
    a, b = embed_pairs(get_encoder(encoder_name), pos_pairs + neg_pairs, progress=False)
    sims = (a * b).sum(-1)
    pos, neg = sims[: len(pos_pairs)], sims[len(pos_pairs) :]
    best = (-1.0, 0.5)
    for t in torch.linspace(0.05, 0.95, 91).tolist():
        recall = float((pos >= t).float().mean())
        specificity = float((neg < t).float().mean()) if len(neg) else 1.0
        score = (recall + specificity) / 2
        if score > best[0]:
            best = (score, t)
    t = round(best[1], 3)
    return {"threshold": t, "balanced_accuracy": round(best[0], 4),
            "in_scope_recall": round(float((pos >= t).float().mean()), 4),
            "out_scope_rejection": round(float((neg < t).float().mean()), 4) if len(neg) else None,
            "cases": len(picked)}


def train_serac(base: torch.nn.Module, tokenizer: Any, cases: Sequence[Case], out: str | Path,
                config: TrainConfig, *, extra: dict[str, Any] | None = None, progress: bool = True,
                log: Callable[[str], None] | None = None, architecture: Architecture | None = None,
                val: Sequence[Case] | None = None) -> Path:
    """Train the counterfactual model and the learned scope classifier, tune the cosine
    threshold, and write the checkpoint folder."""
    scope = tune_threshold(cases, config.encoder, config.threshold_cases, config.seed)
    if log:
        log(f"scope classifier (cosine): {scope}")
    learned, learned_stats = train_learned_scope(cases, get_encoder(config.encoder), seed=config.seed,
                                                 progress=progress)
    if log:
        log(f"scope classifier (learned): {learned_stats}")
    model, info = train_counterfactual(base, tokenizer, cases, config, progress=progress, log=log,
                                       architecture=architecture, val=val)
    meta = {
        "base_fingerprint": base_fingerprint(base),
        "base_model_type": model_config(base).model_type,
        "threshold": scope["threshold"],
        "scope": scope,
        "scope_classifier": {**learned_stats, "file": SCOPE_FILE},
        "encoder_name": config.encoder,
        "encoder": get_encoder(config.encoder).identity,
        "train": {**attrs.asdict(config), **info, **(extra or {})},
    }
    folder = save_checkpoint(out, model, meta)
    learned.save(Path(folder) / SCOPE_FILE)
    return folder

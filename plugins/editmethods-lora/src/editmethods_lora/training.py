"""Train one LoRA adapter on the edits' target tokens (teacher forced, prompt masked).

The adapter is attached under a temporary name for training and removed again before
returning, so ``compute_update`` leaves the model exactly as it found it; the trained
matrices travel in the update and ``apply`` attaches them under the edit's id. Live adapters
of earlier edits stay active (frozen) while training: a sequence of edits builds on itself.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from editmethods.errors import EditError
from editmethods.modes import restore_training_modes, training_modes
from editmethods.scoring import model_device, pad_id, pad_rows, target_ids
from editmethods.types import EditRequest
from editmethods_lora import adapters
from editmethods_lora.hparams_lora import LoRAHyperParams


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    # The adapter's random init and dropout are seeded, the caller's RNG state is restored.
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    # No graph is built for base weights (only the adapter is trained); flags restored after.
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def target_nll(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
               max_length: int) -> torch.Tensor:
    """Mean over requests of the mean NLL of each request's target tokens after its prompt."""
    device = model_device(model)
    pad = pad_id(tokenizer)
    pairs = []
    for r in requests:
        p, t = target_ids(tokenizer, r.prompt, r.target_text)
        pairs.append((p[-max_length:], t))
    if getattr(model.config, "is_encoder_decoder", False):
        enc = _padded_on([p for p, _ in pairs], pad, device)
        labels = _padded_on([t for _, t in pairs], -100, device)
        out = model(input_ids=enc[0], attention_mask=enc[1], labels=labels[0])
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        rows = [logp[i, : len(t)] for i, (_, t) in enumerate(pairs)]
    else:
        ids, mask = _padded_on([p + t for p, t in pairs], pad, device)
        out = model(input_ids=ids, attention_mask=mask)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        rows = [logp[i, len(p) - 1 : len(p) - 1 + len(t)] for i, (p, t) in enumerate(pairs)]
    losses = [-row.gather(1, torch.tensor(t, device=device)[:, None]).mean()
              for row, (_, t) in zip(rows, pairs)]
    return torch.stack(losses).mean()


def _padded_on(rows: list[list[int]], fill: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = pad_rows(rows, fill)
    return ids.to(device), mask.to(device)


def train_adapter(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                  hp: LoRAHyperParams, modules: Sequence[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train a fresh adapter on ``modules``; return its matrices and a JSON summary."""
    name = f"editmethods-training-{uuid.uuid4().hex[:8]}"
    device = model_device(model)
    modes = training_modes(model)
    losses: list[float] = []
    with _seeded(hp.seed, device), _frozen(model):
        adapters.attach(model, name, modules, rank=hp.rank, lora_alpha=hp.lora_alpha,
                        lora_dropout=hp.lora_dropout, use_rslora=hp.use_rslora)
        try:
            params = adapters.parameters_of(model, name)
            for p in params:
                p.requires_grad_(True)
            opt = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
            model.eval()  # the base model's dropout off: the edit is deterministic
            for d in adapters.dropouts_of(model, name):
                d.train()  # ... but the adapter's own dropout acts while training, as peft's
            bar = tqdm(range(hp.num_steps), desc="lora", leave=False, disable=None)
            for _ in bar:
                total = 0.0
                for start in range(0, len(requests), hp.batch_size):
                    chunk = requests[start : start + hp.batch_size]
                    loss = target_nll(model, tokenizer, chunk, hp.max_length)
                    if not torch.isfinite(loss):
                        raise EditError("lora: the loss became NaN/inf; the model was not "
                                        "changed (lower lr)")
                    grads = torch.autograd.grad(loss, params)
                    for p, g in zip(params, grads):
                        p.grad = g
                    opt.step()
                    total += float(loss.detach()) * len(chunk)
                losses.append(total / len(requests))
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                if losses[-1] < hp.early_stop_loss:
                    break
            weights = adapters.weights_of(model, name)
        finally:
            restore_training_modes(modes)
            adapters.detach(model, name)
    meta = {
        "modules": list(modules),
        "rank": hp.rank,
        "lora_alpha": hp.lora_alpha,
        "lora_dropout": hp.lora_dropout,
        "use_rslora": hp.use_rslora,
        "steps": len(losses),
        # the loss of the last step's forward pass, before its optimizer step
        "final_loss": losses[-1] if losses else None,
    }
    return weights, meta

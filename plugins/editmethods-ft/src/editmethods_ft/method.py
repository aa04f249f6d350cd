"""FT-L / FT-M: fine-tune chosen weights on the edit, computed without touching the model.

The trained copies live outside the model and the forward pass uses them through
``torch.func.functional_call``; the result is a dense delta per weight, which the core
writes (and undoes exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.func import functional_call

from editmethods.architectures import Architecture, get_module, parameter_path
from editmethods.errors import EditError
from editmethods.modes import restore_training_modes, training_modes
from editmethods.scoring import model_device, pad_id, pad_rows, target_ids
from editmethods.types import Delta, EditRequest, Location, Update
from editmethods_ft.hparams_ft import FTHyperParams


def weight_names(hp: FTHyperParams, arch: Architecture, model: torch.nn.Module, layers: Sequence[int]) -> list[str]:
    names = []
    for layer in layers:
        module_name = hp.rewrite_module_tmp.format(layer) if hp.rewrite_module_tmp else arch.path("mlp_out", layer)
        get_module(model, module_name)
        names.append(f"{module_name}.weight")
    return names


def _batch(tokenizer: Any, requests: Sequence[EditRequest], max_length: int, device: torch.device):
    rows, spans = [], []
    for r in requests:
        p, t = target_ids(tokenizer, r.prompt, r.target_text)
        p = p[-max_length:]
        rows.append(p + t)
        spans.append((len(p), len(t)))
    ids, mask = pad_rows(rows, pad_id(tokenizer))
    return ids.to(device), mask.to(device), spans


def _loss(logits: torch.Tensor, ids: torch.Tensor, spans, objective: str) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)
    losses = []
    for i, (n_prompt, n_target) in enumerate(spans):
        target = ids[i, n_prompt : n_prompt + n_target]
        if objective == "target_new":
            rows = logp[i, n_prompt - 1 : n_prompt - 1 + n_target]
            losses.append(-rows.gather(1, target[:, None]).mean())
        else:  # prompt_last: every target token scored at the prompt's last position
            losses.append(-logp[i, n_prompt - 1, target].mean())
    return torch.stack(losses).mean()


def compute_ft_update(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                      hp: FTHyperParams, location: Location, arch: Architecture) -> Update:
    if getattr(model.config, "is_encoder_decoder", False):
        return _compute(model, tokenizer, requests, hp, location, arch, seq2seq=True)
    return _compute(model, tokenizer, requests, hp, location, arch, seq2seq=False)


def _compute(model, tokenizer, requests, hp, location, arch, *, seq2seq: bool) -> Update:
    names = weight_names(hp, arch, model, location.layers)
    base = {n: model.get_parameter(n).detach() for n in names}
    # a weight another edit wrapped (a LoRA adapter) is registered under another path
    paths = {n: parameter_path(model, n) for n in names}
    trained = {n: w.float().clone().requires_grad_(True) for n, w in base.items()}
    opt = torch.optim.Adam(list(trained.values()), lr=hp.lr, weight_decay=hp.weight_decay)
    device = model_device(model)
    modes = training_modes(model)
    model.eval()  # no dropout: the edit must be deterministic
    # Only the trained copies need gradients: with the model's own parameters frozen for the
    # edit, backward stops at the lowest edited layer and writes no .grad into the model
    # (on SmolLM2-135M a step took 1.15 s with them trainable, 0.53 s frozen).
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        for _ in range(hp.num_steps):
            total = 0.0
            for start in range(0, len(requests), hp.batch_size):
                chunk = requests[start : start + hp.batch_size]
                opt.zero_grad()
                params = {paths[n]: t.to(base[n].dtype) for n, t in trained.items()}
                loss = _step_loss(model, tokenizer, chunk, hp, params, device, seq2seq)
                if not torch.isfinite(loss):
                    raise EditError("ft: the loss became NaN/inf; the model was not changed "
                                    "(lower lr)")
                loss.backward()
                opt.step()
                if hp.norm_constraint:
                    with torch.no_grad():
                        for n, t in trained.items():
                            w0 = base[n].float()
                            t.copy_(torch.clamp(t, w0 - hp.norm_constraint, w0 + hp.norm_constraint))
                total += float(loss.detach()) * len(chunk)
            if total / len(requests) < hp.early_stop_loss:
                break
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        restore_training_modes(modes)
    deltas = tuple(Delta(param=n, dense=(trained[n].detach() - base[n].float()).cpu()) for n in names)
    return Update(method="ft", deltas=deltas, meta={"final_loss": total / len(requests)})


def _step_loss(model, tokenizer, chunk, hp, params, device, seq2seq: bool) -> torch.Tensor:
    if not seq2seq:
        ids, mask, spans = _batch(tokenizer, chunk, hp.max_length, device)
        out = functional_call(model, params, args=(), kwargs={"input_ids": ids, "attention_mask": mask},
                              strict=False)
        return _loss(out.logits, ids, spans, hp.objective)
    losses = []
    for r in chunk:
        p, t = target_ids(tokenizer, r.prompt, r.target_text)
        enc = torch.tensor([p], device=device)
        labels = torch.tensor([t], device=device)
        out = functional_call(model, params, args=(), kwargs={"input_ids": enc, "labels": labels},
                              strict=False)
        losses.append(out.loss)
    return torch.stack(losses).mean()

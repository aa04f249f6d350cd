"""The gradient's rank-one factors: each edited weight's layer input ``u`` and output
gradient ``δ`` at every token that carries gradient, captured with forward hooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from editmethods.architectures import Architecture, get_module, get_parameter, weight_layout
from editmethods.errors import EditError
from editmethods.scoring import model_device, pad_id, target_ids
from editmethods.toolkit.tracing import first_tensor, trace
from editmethods_mend.network import ParamSpec


@attrs.frozen
class TokenBatch:
    """Right-padded prompt + target sequences with the target positions marked."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    #: ``[B, L-1]`` next-token labels (the token at ``i+1``), ``-100`` where not scored.
    labels: torch.Tensor


def encode(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int = 64) -> TokenBatch:
    """Tokenize ``(prompt, target_text)`` pairs; only target tokens are scored.

    Sequences longer than ``max_length`` lose tokens from the prompt's start, so the target
    and the words right before it are kept.
    """
    rows, targets = [], []
    for prompt, target in pairs:
        p, t = target_ids(tokenizer, prompt, target)
        seq = (p + t)[-max_length:]
        rows.append(seq)
        targets.append(min(len(t), len(seq) - 1))
    width = max(len(r) for r in rows)
    pad = pad_id(tokenizer)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width - 1), -100, dtype=torch.long)
    for i, (r, n_t) in enumerate(zip(rows, targets)):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        labels[i, len(r) - 1 - n_t : len(r) - 1] = torch.tensor(r[len(r) - n_t :])
    return TokenBatch(ids, mask, labels)


def per_sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of each sequence's scored tokens, ``[B]``."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    scored = labels != -100
    picked = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return -(picked * scored).sum(-1) / scored.sum(-1).clamp(min=1)


def param_specs(model: torch.nn.Module, arch: Architecture, layers: Sequence[int],
                roles: Sequence[str]) -> list[ParamSpec]:
    """The weights ``roles`` × ``layers`` with their layouts and sizes."""
    specs = []
    for layer in layers:
        arch.check_layer(model, layer)
        for role in roles:
            module_name = arch.path(role, layer)
            module = get_module(model, module_name)
            layout = weight_layout(module)
            w = get_parameter(model, module_name + ".weight")
            in_dim, out_dim = (w.shape[0], w.shape[1]) if layout == "in_out" else (w.shape[1], w.shape[0])
            specs.append(ParamSpec(module_name + ".weight", layout, int(in_dim), int(out_dim)))
    return specs


def _module_of(param: str) -> str:
    return param.rsplit(".", 1)[0]


def collect_factors(
    model: torch.nn.Module,
    batch: TokenBatch,
    params: Sequence[str],
    *,
    param_values: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-token factors ``(u [T, in], δ [T, out])`` of the loss ``Σ_seq mean NLL`` for each
    weight in ``params``.

    Only tokens whose output gradient is non-zero are kept (padding and positions after the
    last scored one carry none), as MEND does. The model's parameters are never written and
    their ``.grad`` is left alone: the gradient is taken with respect to module outputs only.
    """
    modules = [_module_of(p) for p in params]
    device = model_device(model)

    def as_leaf(name: str, y: torch.Tensor) -> torch.Tensor:
        # a frozen model's outputs carry no graph; make them leaves to differentiate
        return y if y.requires_grad else y.detach().requires_grad_(True)

    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
    with torch.enable_grad(), trace(model, modules, retain_input=True, detach=False,
                                    edit_output=as_leaf) as rec:
        if param_values is not None:
            logits = torch.func.functional_call(
                model, dict(param_values), (), {"input_ids": ids, "attention_mask": mask}).logits
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = per_sequence_nll(logits, batch.labels.to(device)).sum()
        outputs = [first_tensor(rec[m].output) for m in modules]
        grads = torch.autograd.grad(loss, outputs, allow_unused=True)
    result = {}
    real = mask.reshape(-1).bool()
    for param, module, grad in zip(params, modules, grads):
        u = rec[module].input
        if u is None or grad is None:
            raise EditError(f"mend: no gradient reached {module!r}; is it on the path to the logits?")
        u = u.detach().reshape(-1, u.shape[-1]).float()
        d = grad.detach().reshape(-1, grad.shape[-1]).float()
        keep = real & (d != 0).any(-1)
        result[param] = (u[keep], d[keep])
    return result

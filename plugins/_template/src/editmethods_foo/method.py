"""The algorithm: normalized gradient descent on one weight, computed off the model.

Each step moves the MLP output projection ``W`` of ``hp.layer`` by ``-step_norm · g/‖g‖``,
where ``g`` is the gradient of the mean NLL of the target tokens (prompt masked, teacher
forced). The trained copy never enters the model: the forward pass reads it through
``torch.func.functional_call``, and the difference ``W' - W`` is returned as a dense
:class:`~editmethods.types.Delta`. The core writes it, checks it for NaN/inf, and undoes it
bit for bit on rollback, so this module needs no apply/rollback of its own.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.func import functional_call

from editmethods.architectures import Architecture
from editmethods.errors import EditError
from editmethods.modes import restore_training_modes, training_modes
from editmethods.scoring import model_device, target_ids
from editmethods.types import Delta, EditRequest, Update
from editmethods_foo.hparams import FooHyperParams


def target_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], tokenizer: Any,
                requests: Sequence[EditRequest]) -> torch.Tensor:
    """Mean over requests of the target tokens' mean NLL, with ``params`` swapped in."""
    device = model_device(model)
    losses = []
    for r in requests:
        prompt, target = target_ids(tokenizer, r.prompt, r.target_text)
        if getattr(model.config, "is_encoder_decoder", False):
            out = functional_call(model, params, args=(), strict=False, kwargs={
                "input_ids": torch.tensor([prompt], device=device),
                "labels": torch.tensor([target], device=device)})
            losses.append(out.loss)
            continue
        ids = torch.tensor([prompt + target], device=device)
        logits = functional_call(model, params, args=(), kwargs={"input_ids": ids}, strict=False).logits
        logp = torch.log_softmax(logits[0, len(prompt) - 1 : -1].float(), dim=-1)
        losses.append(-logp.gather(1, torch.tensor(target, device=device)[:, None]).mean())
    return torch.stack(losses).mean()


def compute_foo_update(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                       hp: FooHyperParams, arch: Architecture) -> Update:
    name = arch.path("mlp_out", hp.layer) + ".weight"
    base = model.get_parameter(name).detach()
    weight = base.float().clone()
    modes = training_modes(model)
    model.eval()  # no dropout: the same request must give the same edit
    steps, loss_value = 0, float("nan")
    try:
        for steps in range(1, hp.num_steps + 1):
            weight.requires_grad_(True)
            loss = target_loss(model, {name: weight.to(base.dtype)}, tokenizer, requests)
            loss_value = float(loss.detach())
            if not torch.isfinite(loss):
                raise EditError("foo: the loss is NaN/inf; the model was not changed")
            if loss_value < hp.stop_loss:
                break
            (grad,) = torch.autograd.grad(loss, weight)
            with torch.no_grad():
                weight = weight - hp.step_norm * grad / grad.norm().clamp_min(1e-12)
    finally:
        restore_training_modes(modes)
    delta = (weight.detach() - base.float()).cpu()
    return Update(method="foo", deltas=(Delta(param=name, dense=delta),),
                  meta={"steps": steps, "final_loss": loss_value})

"""``foo``, the template's example method: the module the entry point names.

Registering this module registers :class:`Foo`, the method: its ``spec`` and the lifecycle
steps it defines (see :mod:`editmethods.method`). ``foo`` moves the MLP output projection
``W`` of ``layer`` up to ``num_steps`` times by ``-step_norm · g/‖g‖``, where ``g`` is the
gradient of the target tokens' mean NLL (prompt masked, teacher forced), stopping once that
loss is below ``stop_loss``. The trained copy of ``W`` never enters the model (the forward
pass reads it through ``torch.func.functional_call``): ``W' - W`` is returned as a dense
:class:`~editmethods.Delta` that the core writes, checks for NaN/inf, undoes bit for bit and
saves. A baseline to show the plumbing, not a method that keeps unrelated facts intact.
"""

import attrs
import torch
from torch.func import functional_call

from editmethods import Delta, HyperParams, Location, Method, MethodSpec, Update
from editmethods.scoring import target_ids


@attrs.frozen
class FooHyperParams(HyperParams):
    """Loaded strictly by the core: every field typed, with a default and, where a range
    matters, a validator (``'step_norm' must be > 0: -1.0 @ foo.yaml.step_norm``)."""

    #: The layer whose MLP output projection is edited.
    layer: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: Frobenius norm of each step.
    step_norm: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    num_steps: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    #: Stop once the target's mean NLL is below this.
    stop_loss: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    # Another tool's name for a field -> ours: that tool's files load too.
    _aliases = {"edit_layer": "layer"}


class Foo(Method):
    # name: lowercase, unique among installed methods, the entry point's name. model_types:
    # config.model_type values, ("*",) for any, editmethods.architectures.DECODER_ONLY for
    # causal LMs. batch: one call may take several requests. writes_weights: True by default.
    spec = MethodSpec(name="foo", hparams_class=FooHyperParams, model_types=("*",), batch=True,
                      description="Normalized gradient steps on one MLP output weight")

    # A step takes, by name, the arguments of its hook that it needs (editmethods.hookspecs).
    # Helpers' names start with "_": a public method that is not a step is refused.
    def locate(self, model, hparams, architecture):
        architecture.check_layer(model, hparams.layer)  # a bad layer is refused before any work
        return Location(layers=(hparams.layer,),
                        modules=(architecture.path("mlp_out", hparams.layer),))

    # The model is used as given (models the core loads are in eval mode: no dropout).
    def compute_update(self, model, tokenizer, requests, hparams, location):
        name = location.modules[0] + ".weight"
        base = model.get_parameter(name).detach()
        weight = base.float().clone().requires_grad_()
        for _ in range(hparams.num_steps):
            params = {name: weight.to(base.dtype)}
            loss = torch.stack([_nll(model, tokenizer, r, params) for r in requests]).mean()
            if loss.item() < hparams.stop_loss:
                break
            (grad,) = torch.autograd.grad(loss, weight)
            weight = (weight - hparams.step_norm * grad / grad.norm().clamp_min(1e-12)).detach()
            weight.requires_grad_()
        delta = Delta(param=name, dense=(weight.detach() - base.float()).cpu())
        return Update(method="foo", deltas=(delta,), meta={"final_loss": loss.item()})


def _nll(model, tokenizer, request, params):
    """The target tokens' mean negative log-likelihood after the prompt, with ``params``
    swapped in for the model's own tensors."""
    prompt, target = target_ids(tokenizer, request.prompt, request.target_text)
    # Label -100 is not scored: the prompt is masked (a seq2seq model reads it as its input).
    ids, labels = ((prompt, target) if model.config.is_encoder_decoder
                   else (prompt + target, [-100] * len(prompt) + target))
    ids, labels = (torch.tensor([x], device=model.device) for x in (ids, labels))
    return functional_call(model, params, (ids,), {"labels": labels}, strict=False).loss

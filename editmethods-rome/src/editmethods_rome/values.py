"""The target value v* (ROME) or z (MEMIT): a vector added to a module's output at the
subject's last token, optimized so that the model continues each context with the target.

Loss of edit *i* (ROME eq. 4, as in the reference code)::

    mean over contexts of the target's mean token NLL
      + kl_factor · KL(p(· | "{subject} is a") edited ‖ unedited)     (essence drift)
      + weight_decay · ‖δᵢ‖ / ‖v₀ᵢ‖²
    with ‖δᵢ‖ clamped to clamp_factor · ‖v₀ᵢ‖ after each step,

where ``v₀ᵢ`` is the module's output at the subject in the bare prompt. Many edits are
optimized *together*: the rows of every edit go through one forward/backward pass, each edit
has its own δ (rows of edit *i* only see δᵢ, so the gradients are those of separate runs),
its own Adam state, and its own early stop: an edit whose NLL falls below ``early_stop``
leaves the batch, and the remaining passes get cheaper. The reference code runs one edit at
a time; with one edit this is the same computation.

Given the model's architecture, a step runs only the blocks above the edited one and only the
positions from the subject on, against a cache of everything δ cannot change
(:mod:`editmethods_rome.upper_pass`); the result is that of the plain forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch

from editmethods.architectures import Architecture
from editmethods.errors import EditError
from editmethods.modes import restore_training_modes, training_modes
from editmethods.scoring import model_device, pad_id, target_ids
from editmethods.toolkit.tracing import trace
from editmethods_rome.keys import lookup_index, pad_rows
from editmethods_rome.upper_pass import UpperPass, equivalent


@attrs.frozen
class _Row:
    ids: tuple[int, ...]
    edit: int
    pos: int
    #: position whose logits predict the first target token; -1 for KL rows
    tstart: int = -1
    targets: tuple[int, ...] = ()
    bare: bool = False

    @property
    def kl(self) -> bool:
        return not self.targets


@attrs.frozen
class ValueResult:
    """What the optimization found, per edit (all ``[n, d]`` float32)."""

    #: module output at the fact token, bare prompt, before the edit (v₀)
    init: torch.Tensor
    #: the same averaged over all contexts
    mean_init: torch.Tensor
    #: the optimized δ
    delta: torch.Tensor
    #: optimization steps taken per edit
    steps: tuple[int, ...]
    #: target NLL per edit at the returned δ
    nll: tuple[float, ...]


def build_rows(tokenizer: Any, requests: Sequence[Any], prefixes: Sequence[str],
               fact_token: str, kl_prompt: str) -> list[_Row]:
    """Token rows: every context of every edit (prompt + target minus its last token), then
    the KL prompt of each edit."""
    if not prefixes or prefixes[0] != "":
        raise ValueError("the first context prefix must be '' (the bare prompt)")
    rows: list[_Row] = []
    for i, r in enumerate(requests):
        for pre in prefixes:
            text = pre + r.prompt
            p_ids, t_ids = target_ids(tokenizer, text, r.target_text)
            pos = lookup_index(tokenizer, text, r.subject, fact_token, start=len(pre))
            rows.append(_Row(tuple(p_ids) + tuple(t_ids[:-1]), i, pos, len(p_ids) - 1,
                             tuple(t_ids), bare=(pre == "")))
        if kl_prompt:
            text = kl_prompt.format(r.subject)
            ids = tuple(tokenizer(text).input_ids)
            rows.append(_Row(ids, i, lookup_index(tokenizer, text, r.subject, fact_token)))
    return rows


def optimize_values(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[Any],
    prefixes: Sequence[str],
    *,
    module: str,
    fact_token: str = "subject_last",
    steps: int = 20,
    lr: float = 0.5,
    weight_decay: float = 0.5,
    clamp_factor: float = 4.0,
    kl_factor: float = 0.0625,
    early_stop: float = 5e-2,
    kl_prompt: str = "{} is a",
    method: str = "rome",
    architecture: Architecture | None = None,
    fast: bool = True,
) -> ValueResult:
    """Optimize one δ per request at the output of ``module`` (see the module docstring).

    :param architecture: the model's module paths; with it (and ``fast``), each step runs
        only the layers above ``module`` and the positions from the subject on, against a
        cache of the rest (:mod:`editmethods_rome.upper_pass`), once that is checked to
        reproduce a plain forward pass on this model. Without it every step is a plain
        forward pass of the whole model.

    :raises EditError: when the loss becomes NaN/inf (nothing is changed).
    """
    device = model_device(model)
    pad = pad_id(tokenizer)
    rows = build_rows(tokenizer, requests, prefixes, fact_token, kl_prompt)
    n = len(requests)
    rows_of: list[list[int]] = [[] for _ in range(n)]
    for j, r in enumerate(rows):
        rows_of[r.edit].append(j)
    modes = training_modes(model)
    grad_flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():  # gradients are only needed for δ
        p.requires_grad_(False)
    state: dict[str, Any] = {}

    def add_delta(name: str, out: torch.Tensor) -> torch.Tensor:
        k, pos, d = state["add"]
        if "init_rows" not in state:
            state["init_rows"] = out[k, pos].detach().float().clone()
        return out.index_put((k, pos), d.to(out.dtype), accumulate=True)

    def plain(sel: torch.Tensor, delta_rows: torch.Tensor,
              sites: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        chosen = [rows[j] for j in sel.tolist()]
        ids, mask = pad_rows([r.ids for r in chosen], pad, device)
        k = torch.arange(len(chosen), device=device)
        state["add"] = (k, torch.tensor([r.pos for r in chosen], device=device), delta_rows)
        with trace(model, [module], edit_output=add_delta, retain_output=False, detach=False):
            logits = model(input_ids=ids, attention_mask=mask).logits
        return [logits[kk, pp] for kk, pp in sites]

    delta: torch.Tensor | None = None
    m: torch.Tensor | None = None  # Adam's moments, made with delta at the first step
    v: torch.Tensor | None = None
    kl_init = None
    t = torch.zeros(n)
    active = list(range(n))
    done_steps = [steps] * n
    final_nll = [float("nan")] * n
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    try:
        forward = plain
        upper = None
        if architecture is not None and fast:
            upper = UpperPass.build(model, architecture, module, [r.ids for r in rows],
                                    [r.pos for r in rows], pad)
        if upper is not None:
            state["init_rows"] = upper.init
            probe = _probe_delta(upper.init, rows, device)
            everything = torch.arange(len(rows), device=device)
            b0 = _batch_index(rows, list(range(len(rows))), device, n)
            sites0 = [(b0["tok_k"], b0["tok_pos"]), (b0["kl_k"], b0["kl_pos"])]
            if equivalent(model, lambda d: upper.logits(everything, d, sites0),
                          lambda d: plain(everything, d, sites0), probe):
                forward = upper.logits
            else:
                state.pop("init_rows", None)
        for step in range(steps):
            sel = [j for i in active for j in rows_of[i]]
            b = _batch_index(rows, sel, device, n)
            sel_t = torch.tensor(sel, device=device)
            if delta is None:
                width = (int(state["init_rows"].shape[-1]) if "init_rows" in state
                         else _output_width(model, module, *pad_rows([rows[0].ids], pad, device)))
                delta = torch.zeros(n, width, device=device)
                m, v = torch.zeros_like(delta), torch.zeros_like(delta)
            d = delta.clone().requires_grad_(True)
            with torch.enable_grad():
                tok_logits, kl_logits = forward(
                    sel_t, d[b["owner"]], [(b["tok_k"], b["tok_pos"]), (b["kl_k"], b["kl_pos"])])
                if step == 0:  # everything is active: rows are in edit order
                    init = state["init_rows"]
                    v0 = init[b["bare_k"]]
                    v_mean = torch.zeros(n, init.shape[-1], device=device).index_add_(
                        0, b["rw_edit"], init[b["rw_k"]]) / b["rw_count"][:, None]
                    v0_norm = v0.norm(dim=-1).clamp_min(1e-12)
                lp = torch.log_softmax(tok_logits.float(), -1)
                lp = lp.gather(1, b["tok_tgt"][:, None])[:, 0]
                row_nll = torch.zeros(len(b["rw_k"]), device=device).index_add(
                    0, b["tok_row"], -lp) / b["row_len"]
                nll = torch.zeros(n, device=device).index_add(0, b["rw_edit"], row_nll)
                nll = nll / b["rw_count"].clamp_min(1)
                kl = torch.zeros(n, device=device)
                if len(b["kl_k"]):
                    klp = torch.log_softmax(kl_logits.float(), -1)
                    if kl_init is None:
                        kl_init = torch.zeros(n, klp.shape[-1], device=device)
                        kl_init[b["kl_edit"]] = klp.detach()
                    each = (klp.exp() * (klp - kl_init[b["kl_edit"]])).sum(-1)
                    kl = kl.index_add(0, b["kl_edit"], each) / b["kl_count"].clamp_min(1)
                wd = weight_decay * d.norm(dim=-1) / v0_norm ** 2
                loss = nll + kl_factor * kl + wd
                act = torch.tensor(active, device=device)
                if not bool(torch.isfinite(loss[act]).all()):
                    bad = active[int((~torch.isfinite(loss[act])).nonzero()[0])]
                    raise EditError(
                        f"{method}: the value optimization became NaN/inf at step {step} "
                        f"(edit {bad}: {requests[bad].prompt!r}); the model was not changed "
                        "(lower v_lr or clamp_norm_factor)"
                    )
                nll_now = nll.detach().cpu().tolist()
                for i in active:
                    final_nll[i] = nll_now[i]
                keep = [i for i in active if nll_now[i] >= early_stop]
                for i in active:
                    if nll_now[i] < early_stop:
                        done_steps[i] = step
                if not keep or step == steps - 1:
                    break
                loss[torch.tensor(keep, device=device)].sum().backward()
            with torch.no_grad():
                # set with delta at step 0; backward() above reached d (the loss reads it)
                assert m is not None and v is not None and d.grad is not None
                rows_k = torch.tensor(keep, device=device)
                g = d.grad[rows_k]
                t[keep] += 1
                tk = t[keep].to(device)[:, None]
                m[rows_k] = beta1 * m[rows_k] + (1 - beta1) * g
                v[rows_k] = beta2 * v[rows_k] + (1 - beta2) * g * g
                m_hat = m[rows_k] / (1 - beta1 ** tk)
                v_hat = v[rows_k] / (1 - beta2 ** tk)
                new = delta[rows_k] - lr * m_hat / (v_hat.sqrt() + eps)
                limit = (clamp_factor * v0_norm[rows_k])[:, None]
                norm = new.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                new = torch.where(norm > limit, new * limit / norm, new)
                delta[rows_k] = new
            active = keep
    finally:
        for p, flag in zip(model.parameters(), grad_flags):
            p.requires_grad_(flag)
        restore_training_modes(modes)
    assert delta is not None
    return ValueResult(init=v0.detach().cpu(), mean_init=v_mean.detach().cpu(),
                       delta=delta.detach().cpu(), steps=tuple(done_steps),
                       nll=tuple(final_nll))


def _probe_delta(init: torch.Tensor, rows: Sequence[_Row], device: torch.device) -> torch.Tensor:
    """A seeded random δ per row, of the size of the values, for the equivalence check."""
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(init.shape, generator=gen).to(device)
    scale = init.norm(dim=-1, keepdim=True).mean().clamp_min(1e-6)
    return probe / probe.norm(dim=-1, keepdim=True) * scale


def _batch_index(rows: Sequence[_Row], sel: Sequence[int], device: torch.device, n: int) -> dict:
    """Index tensors that vectorize the loss over the selected rows."""
    rw_k: list[int] = []  # annotated: its first use is len(), which mypy cannot infer from
    owner, pos, bare_k, rw_edit, row_len = [], [], [], [], []
    tok_k, tok_pos, tok_tgt, tok_row = [], [], [], []
    kl_k, kl_pos, kl_edit = [], [], []
    for k, j in enumerate(sel):
        r = rows[j]
        owner.append(r.edit)
        pos.append(r.pos)
        if r.kl:
            kl_k.append(k)
            kl_pos.append(r.pos)
            kl_edit.append(r.edit)
            continue
        if r.bare:
            bare_k.append(k)
        row = len(rw_k)
        rw_k.append(k)
        rw_edit.append(r.edit)
        row_len.append(len(r.targets))
        for q, tgt in enumerate(r.targets):
            tok_k.append(k)
            tok_pos.append(r.tstart + q)
            tok_tgt.append(tgt)
            tok_row.append(row)

    def T(x, dtype=torch.long):
        return torch.tensor(x, dtype=dtype, device=device)

    rw_edit_t, kl_edit_t = T(rw_edit), T(kl_edit)
    return {
        "r_idx": T(list(range(len(sel)))), "pos": T(pos), "owner": T(owner), "bare_k": T(bare_k),
        "rw_k": T(rw_k), "rw_edit": rw_edit_t, "row_len": T(row_len, torch.float32),
        "tok_k": T(tok_k), "tok_pos": T(tok_pos), "tok_tgt": T(tok_tgt), "tok_row": T(tok_row),
        "kl_k": T(kl_k), "kl_pos": T(kl_pos), "kl_edit": kl_edit_t,
        "rw_count": torch.bincount(rw_edit_t, minlength=n).float() if rw_edit else torch.zeros(n, device=device),
        "kl_count": torch.bincount(kl_edit_t, minlength=n).float() if kl_edit else torch.zeros(n, device=device),
    }


@torch.no_grad()
def _output_width(model: torch.nn.Module, module: str, ids: torch.Tensor, mask: torch.Tensor) -> int:
    with trace(model, [module], stop_after=module) as rec:
        model(input_ids=ids[:1], attention_mask=mask[:1])
    out = rec[module].output
    out = out[0] if isinstance(out, tuple) else out
    return int(out.shape[-1])

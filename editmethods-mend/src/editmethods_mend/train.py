"""The MEND meta-trainer.

Each meta-step samples edits, takes the fine-tuning gradient's factors of the edits on the
frozen base model, maps them through the editor into weight changes, and scores the edited
model (``torch.func.functional_call`` with the edited weights, so the loss differentiates
through the edit into the editor):

    L = c_edit · L_edit + c_loc · L_loc          (c_edit = 0.1, c_loc = 1.0, as in the paper)

``L_edit`` is the new target's NLL on the edit's equivalence prompts (the edit prompt and its
rephrasings); ``L_loc`` is KL(base ‖ edited) of the next-token distributions over unrelated
prompts. Validation on held-out edits picks the best editor and stops early.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v

from editmethods.architectures import Architecture
from editmethods_mend.checkpoint import model_hash, save_editor
from editmethods_mend.data import TrainCase
from editmethods_mend.factors import (
    TokenBatch,
    collect_factors,
    encode,
    param_specs,
    per_sequence_nll,
)
from editmethods_mend.network import MENDEditor


@attrs.frozen
class TrainConfig:
    """Settings of a training run (written into the checkpoint's config)."""

    #: Layers whose weights the editor edits; empty = the last two.
    layers: tuple[int, ...] = ()
    roles: tuple[str, ...] = ("mlp_in", "mlp_out")
    rank: int = attrs.field(default=64, validator=v.ge(1))
    #: Initial step size of every weight (learned afterwards).
    init_lr: float = attrs.field(default=1e-3, validator=v.gt(0))
    #: Adam learning rate of the editor network (the paper's 1e-6 is for billion-parameter
    #: models; 1e-4 suits models of a few million).
    editor_lr: float = attrs.field(default=1e-4, validator=v.gt(0))
    #: Adam learning rate of the per-weight step sizes.
    lr_lr: float = attrs.field(default=1e-4, validator=v.gt(0))
    edit_weight: float = attrs.field(default=0.1, validator=v.ge(0))
    loc_weight: float = attrs.field(default=1.0, validator=v.ge(0))
    #: Where the locality KL is taken: ``"answer"`` (the positions that predict the
    #: unrelated prompt's answer) or ``"all"`` (every token, as MEND does on NQ sentences).
    loc_positions: str = attrs.field(default="answer", validator=v.in_(("answer", "all")))
    steps: int = attrs.field(default=5000, validator=v.ge(1))
    #: Edits per meta-step (their factors go through the editor together).
    batch_size: int = attrs.field(default=1, validator=v.ge(1))
    #: Unrelated prompts per edit in the locality loss.
    loc_per_edit: int = attrs.field(default=4, validator=v.ge(1))
    val_every: int = attrs.field(default=500, validator=v.ge(1))
    val_cases: int = attrs.field(default=60, validator=v.ge(1))
    #: Validations without improvement before stopping.
    patience: int = attrs.field(default=5, validator=v.ge(1))
    #: Wall-clock budget; training stops (keeping the best editor) when it is spent.
    max_minutes: float = attrs.field(default=14.0, validator=v.gt(0))
    #: Edits whose factors estimate the normalization statistics before training.
    norm_warmup: int = attrs.field(default=200, validator=v.ge(0))
    grad_clip: float = attrs.field(default=100.0, validator=v.gt(0))
    max_length: int = attrs.field(default=64, validator=v.ge(2))
    seed: int = 0


@attrs.frozen
class TrainResult:
    """What a training run produced."""

    folder: Path
    steps: int
    seconds: float
    best: dict[str, float]
    history: tuple[dict[str, float], ...]


def _kl_base_to_edited(pre_logits: torch.Tensor, post_logits: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions in ``mask`` of KL(p_base ‖ p_edited)."""
    pre = torch.log_softmax(pre_logits.float(), -1)
    post = torch.log_softmax(post_logits.float(), -1)
    kl = (pre.exp() * (pre - post)).sum(-1)
    m = mask.float()
    return (kl * m).sum() / m.sum().clamp(min=1)


def _locality_mask(batch: TokenBatch, where: str) -> torch.Tensor:
    """Positions the locality KL is taken at: ``"answer"``, those that predict the
    unrelated prompt's answer (what the locality metrics read); ``"all"``, every real
    position (MEND's choice for its NQ sentences)."""
    if where == "all":
        return batch.attention_mask
    mask = torch.zeros_like(batch.attention_mask)
    mask[:, :-1] = (batch.labels != -100).long()
    return mask


def _token_accuracy(logits: torch.Tensor, batch: TokenBatch) -> list[float]:
    pred = logits[:, :-1].argmax(-1)
    scored = batch.labels != -100
    hit = (pred == batch.labels) & scored
    return (hit.sum(-1).float() / scored.sum(-1).clamp(min=1).float()).tolist()


class MENDTrainer:
    """Meta-trains a :class:`MENDEditor` for one frozen base model."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, architecture: Architecture,
                 config: TrainConfig) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.arch = architecture
        self.config = config
        n = architecture.n_layers(model)
        layers = config.layers or tuple(range(max(0, n - 2), n))
        self.specs = param_specs(model, architecture, layers, config.roles)
        self.names = tuple(s.name for s in self.specs)
        torch.manual_seed(config.seed)
        self.rng = random.Random(config.seed)
        self.editor = MENDEditor(self.specs, config.rank, config.init_lr)
        self.base = {name: self.model.get_parameter(name) for name in self.names}
        nets = [p for n_, p in self.editor.named_parameters() if n_ != "lrs"]
        self.opt = torch.optim.Adam([
            {"params": nets, "lr": config.editor_lr},
            {"params": [self.editor.lrs], "lr": config.lr_lr},
        ])

    # -- pieces -----------------------------------------------------------------------
    def _edited_params(self, cases: Sequence[TrainCase]) -> dict[str, torch.Tensor]:
        batch = encode(self.tokenizer, [(c.prompt, c.target_text) for c in cases], self.config.max_length)
        factors = collect_factors(self.model, batch, self.names)
        new = {}
        for name in self.names:
            left, right = self.editor.low_rank_update(name, *factors[name])
            new[name] = self.base[name] + (left @ right).to(self.base[name].dtype)
        return new

    def _forward(self, params: dict[str, torch.Tensor] | None, batch: TokenBatch) -> torch.Tensor:
        kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if params is None:
            return self.model(**kwargs).logits
        return torch.func.functional_call(self.model, params, (), kwargs).logits

    def warm_up_norms(self, cases: Sequence[TrainCase]) -> None:
        """Estimate the factors' normalization statistics on ``cases``."""
        for start in range(0, len(cases), 8):
            chunk = cases[start: start + 8]
            batch = encode(self.tokenizer, [(c.prompt, c.target_text) for c in chunk], self.config.max_length)
            factors = collect_factors(self.model, batch, self.names)
            for i, name in enumerate(self.names):
                self.editor.factor_norm(i).update(*factors[name])

    def step(self, cases: Sequence[TrainCase], pool: Sequence[TrainCase]) -> dict[str, float]:
        """One meta-step on the edits ``cases``; ``pool`` supplies unrelated prompts when a
        case has none of its own."""
        cfg = self.config
        self.editor.train()
        new = self._edited_params(cases)
        edit_pairs = [(p, c.target_text) for c in cases for p in (c.prompt, *c.rephrases)]
        loc_pairs: list[tuple[str, str]] = []
        for c in cases:
            own = list(c.locality)
            self.rng.shuffle(own)
            while len(own) < cfg.loc_per_edit:  # prompts of other random edits
                other = self.rng.choice(pool)
                if other.subject != c.subject:
                    own.append((other.prompt, other.target_true or other.target_new))
            loc_pairs.extend((p, " " + a.strip()) for p, a in own[: cfg.loc_per_edit])
        batch = encode(self.tokenizer, edit_pairs + loc_pairs, cfg.max_length)
        n_e = len(edit_pairs)
        loc = TokenBatch(batch.input_ids[n_e:], batch.attention_mask[n_e:], batch.labels[n_e:])
        with torch.no_grad():
            pre = self._forward(None, loc)
        post = self._forward(new, batch)
        l_edit = per_sequence_nll(post[:n_e], batch.labels[:n_e]).mean()
        l_loc = _kl_base_to_edited(pre, post[n_e:], _locality_mask(loc, cfg.loc_positions))
        loss = cfg.edit_weight * l_edit + cfg.loc_weight * l_loc
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.editor.parameters(), cfg.grad_clip)
        self.opt.step()
        return {"loss": loss.item(), "edit": l_edit.item(), "loc": l_loc.item()}

    @torch.no_grad()
    def validate(self, cases: Sequence[TrainCase]) -> dict[str, float]:
        """Single edits on ``cases``: efficacy (edit prompt), paraphrase (rephrasings) and
        locality (agreement with the base model on the case's unrelated prompts), each the
        mean teacher-forced token accuracy, as the core's metrics compute them."""
        self.editor.eval()
        eff, par, nei = [], [], []
        for c in cases:
            with torch.enable_grad():
                new = self._edited_params([c])
            edit_pairs = [(p, c.target_text) for p in (c.prompt, *c.rephrases)]
            loc_pairs = [(p, " " + a.strip()) for p, a in c.locality[: self.config.loc_per_edit]]
            batch = encode(self.tokenizer, edit_pairs + loc_pairs, self.config.max_length)
            post = self._forward(new, batch)
            acc = _token_accuracy(post, batch)
            eff.append(acc[0])
            par.extend(acc[1: len(edit_pairs)])
            if loc_pairs:
                n_e = len(edit_pairs)
                loc = TokenBatch(batch.input_ids[n_e:], batch.attention_mask[n_e:], batch.labels[n_e:])
                pre_pred = self._forward(None, loc)[:, :-1].argmax(-1)
                post_pred = post[n_e:, :-1].argmax(-1)
                scored = loc.labels != -100
                agree = ((pre_pred == post_pred) & scored).sum(-1).float() / scored.sum(-1).clamp(min=1)
                nei.extend(agree.tolist())
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        out = {"efficacy": mean(eff), "paraphrase": mean(par), "locality": mean(nei)}
        out["score"] = mean([x for x in out.values() if not math.isnan(x)])
        return out


def train_editor(
    model: torch.nn.Module,
    tokenizer: Any,
    architecture: Architecture,
    train_cases: Sequence[TrainCase],
    val_cases: Sequence[TrainCase],
    out: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Meta-train an editor for ``model`` and write the best one (by validation) to ``out``.

    :param train_cases: edits to learn from (see :func:`editmethods_mend.data.read_cases`).
    :param val_cases: held-out edits for validation and early stopping.
    :param out: the checkpoint folder (``editor.safetensors`` + ``config.json``).
    """
    from tqdm.auto import tqdm

    if not train_cases:
        raise ValueError("no training cases")
    val_cases = list(val_cases)[: config.val_cases] or list(train_cases)[: config.val_cases]
    start = time.perf_counter()
    base_hash = model_hash(model)
    trainer = MENDTrainer(model, tokenizer, architecture, config)
    warm = list(train_cases)
    trainer.rng.shuffle(warm)
    trainer.warm_up_norms(warm[: config.norm_warmup])
    history: list[dict[str, float]] = []
    best = trainer.validate(val_cases)
    best.update(step=0)
    history.append(dict(best))
    best_state = copy.deepcopy(trainer.editor.state_dict())
    stale, step = 0, 0
    deadline = start + 60 * config.max_minutes
    bar = tqdm(total=config.steps, desc="mend meta-training", disable=not progress, mininterval=1.0)
    running: dict[str, float] = {}
    try:
        for step in range(1, config.steps + 1):
            cases = trainer.rng.sample(list(train_cases), config.batch_size)
            stats = trainer.step(cases, train_cases)
            running = {k: 0.98 * running.get(k, v_) + 0.02 * v_ for k, v_ in stats.items()}
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix({k: f"{v_:.3f}" for k, v_ in running.items()}, refresh=False)
            out_of_time = time.perf_counter() > deadline
            if step % config.val_every == 0 or step == config.steps or out_of_time:
                val = trainer.validate(val_cases)
                val.update(step=step, **{f"train_{k}": v_ for k, v_ in running.items()})
                history.append(val)
                if log:
                    log(f"step {step}: " + ", ".join(f"{k} {v_:.3f}" for k, v_ in val.items() if k != "step"))
                if val["score"] > best["score"]:
                    best, stale = val, 0
                    best_state = copy.deepcopy(trainer.editor.state_dict())
                else:
                    stale += 1
                    if stale >= config.patience:
                        break
            if out_of_time:
                break
    finally:
        bar.close()
    trainer.editor.load_state_dict(best_state)
    seconds = time.perf_counter() - start
    info = {
        "training": {**attrs.asdict(config), "steps_run": step, "seconds": round(seconds, 1),
                     "n_train": len(train_cases), "n_val": len(val_cases), **(extra or {})},
        "validation": {k: (round(v_, 4) if isinstance(v_, float) else v_) for k, v_ in best.items()},
    }
    folder = save_editor(trainer.editor, out, base_hash=base_hash,
                         model_type=getattr(model.config, "model_type", "?"), extra=info)
    (Path(folder) / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return TrainResult(Path(folder), step, seconds, best, tuple(history))

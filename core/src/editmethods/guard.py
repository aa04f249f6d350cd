"""A guard against collapse: refuse an edit that breaks the model as a whole.

Sequential edits can break a model silently: on testbed-gpt2, MEND's third edit of one
person's facts in a row turns the answers to unrelated prompts into ``" a"``. A
:class:`Guard` probes the model before and after an edit, on a fixed sample of short neutral
texts (their perplexity) and on unedited factual prompts (their greedy answers), and
:meth:`Guard.check` raises :class:`CollapseError` when the perplexity grew by more than
``max_perplexity_ratio`` or fewer than ``min_agreement`` of the prompts kept their answer.

>>> from editmethods.guard import Guard
>>> from editmethods.tiny import tiny_model, tiny_tokenizer
>>> guard = Guard()
>>> model, tok = tiny_model("gpt2"), tiny_tokenizer()
>>> before = guard.probe(model, tok)
>>> guard.check(before, guard.probe(model, tok))    # unchanged model: passes

The probe is one batched forward pass over the texts and the prompts together (each answer
token after the first costs one more pass over the prompts): about 2% of a ROME edit on
SmolLM2-135M and on testbed-gpt2 (``benchmarks/guard.py``). The probe of the model before an
edit can be kept and reused while the model does not change (``Editor.edit`` does).

What it does not see: a drift made of many small steps. Over 100 ROME edits in a row on
testbed-gpt2 the perplexity grows twentyfold, yet compared edit by edit the first refusal
comes at edit 36; with the guard acting (refused edits undone) 84 edits are kept and the
model ends at 10.7 times the perplexity, 2 of 8 answers kept. Compared with the unedited
model's probe instead, 38 are kept and it ends at 1.42 times, 6 of 8 (the benchmark shows
both rules).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import torch

from editmethods.errors import CollapseError
from editmethods.scoring import model_config, model_device, pad_id

#: Short neutral English sentences (written for this module; true in the world of the
#: testbed models too) whose perplexity the guard watches. Short, so that one forward pass
#: over them and the prompts costs little on a real model.
DEFAULT_TEXTS: tuple[str, ...] = (
    "Moscow is the capital of Russia.",
    "The official language of Brazil is Portuguese.",
    "Canada is a country in North America.",
    "People in Poland speak Polish.",
)

#: Factual prompts no edit of a person's facts should touch; their greedy answers must stay.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "The capital of France is",
    "The capital of Japan is",
    "The official language of Spain is",
    "Berlin is a city in",
    "The currency of Japan is the",
    "Egypt is a country in",
    "The capital of Italy is",
    "People in Germany speak",
)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    # typed, unlike a bare ``converter=tuple`` whose element type mypy cannot infer
    return tuple(values)


@attrs.frozen
class Probe:
    """What :meth:`Guard.probe` measured on a model.

    :param perplexity: ``exp`` of the mean next-token negative log-likelihood over every
        token of the guard's texts.
    :param answers: the greedy continuation of each of the guard's prompts.
    """

    perplexity: float
    answers: tuple[str, ...] = attrs.field(converter=_str_tuple)


def _check_fraction(instance: Any, attribute: Any, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


@attrs.frozen
class Guard:
    """Refuses an edit after which the model's text perplexity or its answers to unrelated
    prompts moved too far.

    The defaults were measured with ``benchmarks/guard.py`` on testbed-gpt2 (its output is in
    ``benchmarks/README.md``). 30 single edits each of ROME, MEMIT, FT and MEND with their
    shipped hyper-parameters: perplexity ratio at most 1.18 (ROME; MEND 1.27), agreement at
    least 7/8, none refused. MEND's collapsing sequences: the edit that collapses has ratio
    2.0 and 1/8 answers kept (the third of one person's facts in a row) or 5.5 and 1/8 (the
    fourth edit, of distinct people); both refused. Agreement is the sharper signal, the
    perplexity bound the backstop for a model whose first answer tokens survive.

    :param max_perplexity_ratio: refuse when the texts' perplexity after the edit divided by
        the one before exceeds this (default 1.5).
    :param min_agreement: refuse when fewer than this fraction of the prompts keep their
        greedy answer (default 0.75: 6 of the 8 default prompts).
    :param texts: the text sample whose perplexity is measured (keep them short: their
        longest one sets the width of the probe's batch).
    :param prompts: unedited factual prompts whose greedy answers must stay.
    :param answer_tokens: how many tokens each greedy answer has at most (default 1: the
        collapses seen change the first token; each further one costs a forward pass).
    """

    max_perplexity_ratio: float = attrs.field(default=1.5, validator=attrs.validators.gt(1.0))
    min_agreement: float = attrs.field(default=0.75, validator=_check_fraction)
    texts: tuple[str, ...] = attrs.field(default=DEFAULT_TEXTS, converter=_str_tuple)
    prompts: tuple[str, ...] = attrs.field(default=DEFAULT_PROMPTS, converter=_str_tuple)
    answer_tokens: int = attrs.field(default=1, validator=attrs.validators.ge(1))

    def __attrs_post_init__(self) -> None:
        if not self.texts or not all(t.strip() for t in self.texts):
            raise ValueError("Guard.texts must be non-empty strings")
        if not self.prompts or not all(p.strip() for p in self.prompts):
            raise ValueError("Guard.prompts must be non-empty strings")

    # -- measuring --------------------------------------------------------------------------
    def probe(self, model: torch.nn.Module, tokenizer: Any) -> Probe:
        """The model's perplexity on :attr:`texts` and its greedy answers to :attr:`prompts`.

        One batched forward pass reads both (texts and prompts are rows of one batch); each
        answer token after the first costs one more pass over the prompts. Runs in eval mode
        without gradients; every module's training flag is restored after, and no weight,
        gradient or hook is touched. Deterministic for a given model.
        """
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                return self._probe(model, tokenizer)
        finally:
            for module, mode in modes:
                module.training = mode

    def _probe(self, model: torch.nn.Module, tokenizer: Any) -> Probe:
        seq2seq = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
        eos = getattr(tokenizer, "eos_token_id", None)
        texts = [list(tokenizer(t).input_ids) for t in self.texts]
        prompts = [list(tokenizer(p).input_ids) for p in self.prompts]
        if seq2seq:  # the encoder reads the row; the decoder reads the text back, or answers
            start = [int(model_config(model).decoder_start_token_id)]
            encoder = texts + prompts
            decoder = [start + t for t in texts] + [list(start) for _ in prompts]
        else:
            encoder, decoder = None, texts + prompts
        logits = self._forward(model, tokenizer, encoder, decoder)
        nll, count = 0.0, 0
        for i, t in enumerate(texts):
            # decoder-only: position j predicts token j+1; seq2seq: position j predicts text[j]
            if seq2seq:
                scored, targets = logits[i, : len(t)], t
            else:
                scored, targets = logits[i, : len(t) - 1], t[1:]
            logp = torch.log_softmax(scored.float(), dim=-1)
            nll -= float(logp.gather(-1, torch.tensor(targets, device=logp.device)[:, None]).sum())
            count += len(targets)
        mean = nll / max(count, 1)
        perplexity = math.exp(mean) if math.isfinite(mean) and mean < 700 else math.inf
        rows = decoder[len(texts):]
        answers: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        last = logits[len(texts):]
        for step in range(self.answer_tokens):
            if step:
                enc = encoder[len(texts):] if encoder is not None else None  # seq2seq
                last = self._forward(model, tokenizer, enc, rows)
            for i, row in enumerate(rows):
                if done[i]:
                    continue
                token = int(last[i, len(row) - 1].argmax())
                if token == eos:
                    done[i] = True
                    continue
                answers[i].append(token)
                row.append(token)
            if all(done):
                break
        return Probe(perplexity=perplexity,
                     answers=tuple(tokenizer.decode(a, skip_special_tokens=True) for a in answers))

    @staticmethod
    def _forward(model: torch.nn.Module, tokenizer: Any, encoder: list[list[int]] | None,
                 decoder: list[list[int]]) -> torch.Tensor:
        """Logits of right-padded ``decoder`` rows (and ``encoder`` rows, for seq2seq)."""
        device = model_device(model)

        def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad_id(tokenizer), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            return ids.to(device), mask.to(device)

        ids, mask = padded(decoder)
        if encoder is None:
            return model(input_ids=ids, attention_mask=mask).logits
        enc_ids, enc_mask = padded(encoder)
        return model(input_ids=enc_ids, attention_mask=enc_mask, decoder_input_ids=ids,
                     decoder_attention_mask=mask).logits

    # -- deciding ---------------------------------------------------------------------------
    def agreement(self, before: Probe, after: Probe) -> float:
        """The fraction of prompts whose answer after equals the one before."""
        self._check_pair(before, after)
        same = sum(a == b for a, b in zip(before.answers, after.answers))
        return same / len(before.answers)

    def ratio(self, before: Probe, after: Probe) -> float:
        """Perplexity after / before (``inf`` when after is not finite)."""
        if not math.isfinite(after.perplexity):
            return math.inf
        return after.perplexity / before.perplexity if before.perplexity > 0 else math.inf

    def refuses(self, before: Probe, after: Probe) -> bool:
        """Whether :meth:`check` would raise."""
        return (self.ratio(before, after) > self.max_perplexity_ratio
                or self.agreement(before, after) < self.min_agreement)

    def check(self, before: Probe, after: Probe) -> None:
        """Raise :class:`CollapseError` with the figures when :meth:`refuses`.

        :param before: the probe of the model before the edit.
        :param after: the probe of the model with the edit applied.
        """
        if not self.refuses(before, after):
            return
        ratio, agree = self.ratio(before, after), self.agreement(before, after)
        n = len(before.answers)
        k = round(agree * n)
        failed = []
        if ratio > self.max_perplexity_ratio:
            failed.append("perplexity")
        if agree < self.min_agreement:
            failed.append("agreement")
        changed = [(p, a, b) for p, a, b in zip(self.prompts, before.answers, after.answers)
                   if a != b]
        examples = "; ".join(f"{p!r}: {a!r} -> {b!r}" for p, a, b in changed[:3])
        # values that would have let this edit through, to loosen the guard knowingly
        loose_ratio = max(self.max_perplexity_ratio, _round_up(ratio))
        loose_agree = min(self.min_agreement, math.floor(agree * 100) / 100)
        raise CollapseError(
            f"the edit looks like a collapse of the model ({' and '.join(failed)} out of "
            f"bounds); it was not kept. Perplexity on the guard's {len(self.texts)} texts "
            f"{before.perplexity:.3g} -> {after.perplexity:.3g} (ratio {ratio:.3g}, the guard "
            f"allows at most {self.max_perplexity_ratio:g}); {k}/{n} prompts kept their greedy "
            f"answer (agreement {agree:.2f}, the guard wants at least {self.min_agreement:g})"
            + (f"; changed: {examples}" if examples else "")
            + ". To edit anyway, turn the guard off (edit(..., guard=False)) or loosen it, e.g. "
            f"guard=Guard(max_perplexity_ratio={loose_ratio:g}, min_agreement={loose_agree:g})"
        )

    def _check_pair(self, before: Probe, after: Probe) -> None:
        if len(before.answers) != len(after.answers) or len(before.answers) != len(self.prompts):
            raise ValueError(
                f"the probes have {len(before.answers)} and {len(after.answers)} answers, the "
                f"guard has {len(self.prompts)} prompts: probe both with this guard"
            )


def _round_up(x: float) -> float:
    """``x`` rounded up to 2 significant digits (a threshold that lets ``x`` through)."""
    if not math.isfinite(x) or x <= 0:
        return x
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / scale) * scale


__all__: Sequence[str] = ("CollapseError", "DEFAULT_PROMPTS", "DEFAULT_TEXTS", "Guard", "Probe")

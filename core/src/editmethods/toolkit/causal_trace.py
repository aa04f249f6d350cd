"""Causal tracing (Meng et al., ROME, 2022): which hidden states carry a fact.

The subject's token embeddings are corrupted with Gaussian noise, which destroys the model's
answer; then one hidden state of the clean run is restored at a time, and the probability of
the answer that this recovers measures how much that state carries the fact:

- ``kind="hidden"``: the residual stream after layer ``l`` (the block's output) at token ``t``;
- ``kind="mlp"`` / ``kind="attn"``: the MLP / attention outputs of a *window* of layers
  centred on ``l`` (``[l - window//2, l + window//2)``, clamped to the model), at token ``t``.
  A single MLP carries too little to restore the answer alone; the paper restores 10.

Following the paper and its reference code: the noise scale is 3× the standard deviation of
the embedding layer's outputs over a sample of subjects (:func:`embedding_noise_scale`); the
same pseudo-random noise (seeded) is used for every restored state, so the scores differ only
by what is restored; the score is the answer token's probability at the last position,
averaged over ``samples`` noise draws; the answer is the model's own greedy next token unless
given (for a multi-token answer, its first token, as the reference code).

All (token, layer) restorations are batched into a few forward passes (``batch_size`` rows
each) instead of one pass per state. The tokens before the subject are the same in the clean
and every corrupted run, so they are computed once and reach every pass as a key/value cache,
restoring a state there would change nothing (its score is the corrupted baseline's, by
causality, and is not recomputed), and only the last position's logits are computed. Rows
that restore layers from ``lo`` on start from the corrupted run's input of block ``lo``
(:mod:`editmethods.toolkit.restoration`), once that reproduces a plain pass on this model.

>>> from editmethods.tiny import tiny_model, tiny_tokenizer
>>> r = causal_trace(tiny_model("gpt2"), tiny_tokenizer(), "The capital of France is", "France",
...                  kind="mlp", samples=2, progress=False)
>>> r.scores.shape == (len(r.tokens), 2)
True

:func:`strongest_layer` is what locate-then-edit methods call to pick their layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import torch
from tqdm.auto import tqdm

from editmethods.architectures import Architecture, resolve
from editmethods.errors import (
    ArchitectureError,
    ArgumentError,
    MissingDependencyError,
    RequestError,
)
from editmethods.modes import restore_training_modes, training_modes
from editmethods.scoring import model_config, model_device, target_ids
from editmethods.tokens import subject_token_range
from editmethods.toolkit.restoration import CorruptedRun
from editmethods.toolkit.tracing import trace
from editmethods.types import text_problem

Kind = Literal["hidden", "mlp", "attn"]
KINDS: tuple[Kind, ...] = ("hidden", "mlp", "attn")
#: The module role restored for each kind.
_ROLE = {"hidden": "layer", "mlp": "mlp", "attn": "attn"}
#: The paper's colours: purple for the residual stream, green for MLPs, red for attention.
_CMAP = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}


@attrs.frozen
class TraceResult:
    """Scores of one causal trace.

    ``scores[t, l]`` is the probability of ``answer`` at the last position when the clean
    state at token ``t`` of layer ``l`` (or of the window of MLP/attention outputs centred
    on ``l``) is restored into the corrupted run.
    """

    prompt: str
    subject: str
    kind: str
    #: The prompt's tokens, as decoded one by one.
    tokens: tuple[str, ...]
    #: ``(first, last)`` token index of the subject (inclusive).
    subject_range: tuple[int, int]
    answer: str
    answer_id: int
    #: [tokens × layers] probabilities of the answer with each state restored.
    scores: torch.Tensor
    #: The answer's probability in the clean run.
    high_score: float
    #: The answer's probability in the corrupted run with nothing restored.
    low_score: float
    #: The standard deviation of the noise added to the subject's embeddings.
    noise: float
    samples: int
    #: Layers restored together for ``mlp``/``attn`` (1 for ``hidden``).
    window: int

    @property
    def n_layers(self) -> int:
        return int(self.scores.shape[1])

    @property
    def indirect_effect(self) -> torch.Tensor:
        """``scores - low_score``: the probability each restoration recovers."""
        return self.scores - self.low_score

    def strongest_layer(self, token: int | None = None) -> int:
        """The layer whose restoration recovers most at ``token`` (default: the subject's
        last token, where ROME finds the MLPs that recall the fact)."""
        t = self.subject_range[1] if token is None else token
        return int(torch.argmax(self.scores[t]))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary."""
        return {
            "prompt": self.prompt, "subject": self.subject, "kind": self.kind,
            "tokens": list(self.tokens), "subject_range": list(self.subject_range),
            "answer": self.answer, "answer_id": self.answer_id,
            "scores": self.scores.tolist(), "high_score": self.high_score,
            "low_score": self.low_score, "noise": self.noise, "samples": self.samples,
            "window": self.window, "strongest_layer": self.strongest_layer(),
        }

    def plot(self, path: str | Path) -> Path:
        """Draw the ROME-style heatmap to ``path`` (PNG, or any format matplotlib knows)."""
        return plot_traces([self], path)


def default_window(n_layers: int) -> int:
    """The paper's window of 10 restored layers, clamped so that it covers at most a fifth
    of the model's depth (and at least one layer): on a 6-layer model a window of 10 would
    restore every layer at once and every score would be the same."""
    return max(1, min(10, n_layers // 5))


def _architecture(model: torch.nn.Module, architecture: Architecture | None) -> Architecture:
    if architecture is None:
        from editmethods.plugins import get_plugins

        architecture = resolve(model, get_plugins().architectures())
    arch = architecture
    if getattr(model.config, "is_encoder_decoder", False):
        raise ArchitectureError(
            f"causal tracing corrupts the subject in a decoder-only model's input; "
            f"{arch.model_type!r} is an encoder-decoder model (its subject is read by the encoder "
            "and its embedding is shared with the decoder): trace a decoder-only model"
        )
    return arch


@torch.no_grad()
def embedding_noise_scale(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Iterable[str],
    *,
    architecture: Architecture | None = None,
    factor: float = 3.0,
) -> float:
    """``factor`` × the standard deviation of the embedding layer's outputs over the tokens
    of ``texts`` (the paper: 3σ over the subjects of its fact set)."""
    arch = _architecture(model, architecture)
    embed = arch.path("embed")
    device = model_device(model)
    values = []
    module = model.get_submodule(embed)
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids], device=device)
        if ids.numel():
            values.append(module(ids).float().reshape(-1))
    if not values:
        raise RequestError("embedding_noise_scale needs at least one non-empty text")
    return factor * float(torch.cat(values).std())


def _answer(model: torch.nn.Module, tokenizer: Any, prompt: str, answer: str | None,
            device: torch.device) -> tuple[list[int], int, str, float]:
    ids = list(tokenizer(prompt).input_ids)
    probs = torch.softmax(model(input_ids=torch.tensor([ids], device=device)).logits[0, -1].float(), -1)
    if answer is None:
        answer_id = int(probs.argmax())
    else:
        answer_id = target_ids(tokenizer, prompt, " " + answer.strip())[1][0]
    return ids, answer_id, tokenizer.decode([answer_id]), float(probs[answer_id])


@torch.no_grad()
def causal_trace(
    model: torch.nn.Module,
    tokenizer: Any,
    prompt: str,
    subject: str,
    *,
    kind: Kind = "hidden",
    architecture: Architecture | None = None,
    answer: str | None = None,
    samples: int = 10,
    noise: float | None = None,
    noise_texts: Sequence[str] | None = None,
    window: int | None = None,
    seed: int = 1,
    batch_size: int = 512,
    progress: bool = True,
) -> TraceResult:
    """Trace which states of ``prompt`` carry the model's answer about ``subject``.

    :param kind: ``"hidden"`` (residual stream), ``"mlp"`` or ``"attn"`` outputs.
    :param architecture: module paths; by ``config.model_type`` when not given.
    :param answer: the answer whose probability is measured; default the model's own greedy
        next token.
    :param samples: noise draws averaged per restored state (the paper: 10).
    :param noise: the noise's standard deviation; default :func:`embedding_noise_scale` over
        ``noise_texts`` (default: the subject alone). ``0`` corrupts nothing.
    :param window: layers restored together for ``mlp``/``attn``; default
        :func:`default_window`.
    :param seed: seeds the noise (the caller's RNG is not touched).
    :param batch_size: rows (restored state × sample) per forward pass.
    """
    check_trace_arguments(prompt, subject, kind=kind, answer=answer, samples=samples,
                          noise=noise, window=window)
    arch = _architecture(model, architecture)
    n_layers = arch.n_layers(model)
    if window is None:
        window = default_window(n_layers) if kind != "hidden" else 1
    if kind == "hidden":
        window = 1
    device = model_device(model)
    modes = training_modes(model)
    model.eval()
    try:
        first, last = subject_token_range(tokenizer, prompt, subject)
        ids, answer_id, answer_text, high = _answer(model, tokenizer, prompt, answer, device)
        if noise is None:
            noise = embedding_noise_scale(model, tokenizer, noise_texts or [subject], architecture=arch)
        names = [arch.path(_ROLE[kind], layer) for layer in range(n_layers)]
        # The clean run's states, to restore from.
        with trace(model, names) as clean_rec:
            model(input_ids=torch.tensor([ids], device=device))
        clean = {name: _first(clean_rec[name].output)[0] for name in names}
        n_tokens = len(ids)
        embedding = model.get_submodule(arch.path("embed")).weight
        assert isinstance(embedding, torch.Tensor)  # an embedding's weight (a Parameter)
        hidden = embedding.shape[1]
        gen = torch.Generator().manual_seed(seed)
        draws = (torch.randn(samples, last - first + 1, hidden, generator=gen) * noise).to(device)

        # One configuration = the set of layers restored at one token; configuration 0
        # restores nothing (the corrupted baseline). Tokens before the subject are not
        # corrupted: restoring them is the baseline.
        configs: list[tuple[int, tuple[int, ...]]] = [(-1, ())]
        for t in range(first, n_tokens):
            for center in range(n_layers):
                lo, hi = max(0, center - window // 2), min(n_layers, center - (-window // 2))
                configs.append((t, tuple(range(lo, hi))))
        prefix = _prefix_cache(model, ids[:first], device)
        span = (first, last)
        # Rows that restore from layer lo on share the corrupted run below lo: start them there.
        candidate = CorruptedRun(
            model, arch, samples, prefix=prefix,
            forward=lambda: _plain_logits(model, arch, ids, configs[:1], names, clean, draws,
                                          span, device, prefix))
        runner = candidate if candidate.matches() else None
        per_pass = max(1, batch_size // samples)
        groups: dict[int, list[int]] = {}
        for i, (_, layers) in enumerate(configs[1:], start=1):
            groups.setdefault(layers[0] if runner is not None else 0, []).append(i)
        chunks = [[0]] + [g[j : j + per_pass] for g in groups.values()
                          for j in range(0, len(g), per_pass)]
        probs = torch.empty(len(configs))
        for chunk in tqdm(chunks, desc=f"causal trace ({kind})", leave=False,
                          disable=not progress or None):
            probs[chunk] = _restored_probs(runner, model, arch, ids, [configs[i] for i in chunk],
                                           names, clean, draws, span, answer_id, device, prefix)
    finally:
        restore_training_modes(modes)
    low = float(probs[0])
    scores = torch.full((n_tokens, n_layers), low)
    scores[first:] = probs[1:].reshape(n_tokens - first, n_layers)
    tokens = tuple(tokenizer.decode([i]) for i in ids)
    return TraceResult(prompt=prompt, subject=subject, kind=kind, tokens=tokens,
                       subject_range=(first, last), answer=answer_text, answer_id=answer_id,
                       scores=scores, high_score=high, low_score=low, noise=float(noise),
                       samples=samples, window=window)


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


def _prefix_cache(model: torch.nn.Module, prefix: Sequence[int], device: torch.device) -> Any:
    """The key/value cache of the tokens before the subject (``None`` when there are none or
    the model takes no cache)."""
    if not prefix:
        return None
    try:
        from transformers import DynamicCache
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    cache = DynamicCache(config=model_config(model))
    model(input_ids=torch.tensor([list(prefix)], device=device), past_key_values=cache,
          use_cache=True)
    return cache if cache.get_seq_length() == len(prefix) else None


def _restorations(chunk: Sequence[tuple[int, tuple[int, ...]]], names: Sequence[str],
                  samples: int, device: torch.device) -> dict[str, list[tuple[torch.Tensor, int]]]:
    """Module name -> (row indices, token index) of the rows of ``chunk`` that restore it
    (rows are configuration-major, ``samples`` rows per configuration)."""
    restore: dict[str, list[tuple[torch.Tensor, int]]] = {}
    for c, (t, layers) in enumerate(chunk):
        block = torch.arange(c * samples, (c + 1) * samples, device=device)
        for layer in layers:
            restore.setdefault(names[layer], []).append((block, t))
    return restore


def _plain_logits(model, arch, ids, chunk, names, clean, draws, subject_range, device,
                  prefix=None) -> torch.Tensor:
    """Last-position logits of the rows of ``chunk`` (one forward pass of the whole model
    over the tokens from the subject on, the earlier ones coming from the ``prefix`` cache)."""
    import copy
    import inspect

    samples = draws.shape[0]
    rows = len(chunk) * samples
    first, last = subject_range
    start = first if prefix is not None else 0
    restore = _restorations(chunk, names, samples, device)
    embed = arch.path("embed")
    noise = draws.repeat(len(chunk), 1, 1)

    def patch(name: str, h: torch.Tensor) -> torch.Tensor:
        h = h.clone()
        if name == embed:
            h[:, first - start : last + 1 - start] += noise.to(h.dtype)
        else:
            for block, t in restore.get(name, ()):
                h[block, t - start] = clean[name][t].to(h.dtype)
        return h

    batch = torch.tensor([ids[start:]] * rows, device=device)
    kwargs: dict[str, Any] = {}
    if prefix is not None:
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(rows)
        positions = torch.arange(start, len(ids), device=device)
        kwargs = {"past_key_values": cache, "use_cache": True,
                  "position_ids": positions[None].expand(rows, -1)}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = 1
    with trace(model, [embed, *restore], retain_output=False, edit_output=patch):
        return model(input_ids=batch, **kwargs).logits[:, -1]


def _restored_probs(runner: CorruptedRun | None, model, arch, ids, chunk, names, clean, draws,
                    subject_range, answer_id, device, prefix) -> torch.Tensor:
    """Mean answer probability per configuration of ``chunk``: from the first restored
    block on with ``runner``, or with a plain pass of the whole model."""
    samples = draws.shape[0]
    if runner is None or not chunk[0][1]:
        logits = _plain_logits(model, arch, ids, chunk, names, clean, draws, subject_range,
                               device, prefix)
    else:
        start = subject_range[0] if prefix is not None else 0
        restore = _restorations(chunk, names, samples, device)

        def patch(name: str, h: torch.Tensor) -> torch.Tensor:
            h = h.clone()
            for block, t in restore.get(name, ()):
                h[block, t - start] = clean[name][t].to(h.dtype)
            return h

        logits = runner.run(chunk[0][1][0], len(chunk), list(restore), patch)
    probs = torch.softmax(logits.float(), dim=-1)[:, answer_id]
    return probs.reshape(len(chunk), samples).mean(dim=1).cpu()


def check_trace_arguments(prompt: Any, subject: Any, *, kind: Any = "hidden",
                          answer: Any = None, samples: Any = 10, noise: Any = None,
                          window: Any = None) -> None:
    """Refuse arguments :func:`causal_trace` cannot use, before the model runs.

    :raises RequestError: a prompt, subject or answer that is not non-empty text, or a
        subject that is not in the prompt.
    :raises ArgumentError: an unknown ``kind``, or ``samples``, ``window`` or ``noise`` out
        of range.
    """
    found = [text_problem(prompt, "prompt", "give the text whose answer is traced"),
             text_problem(subject, "subject", "give the entity in the prompt to corrupt"),
             text_problem(answer, "answer", "give the answer to trace, or leave it out for "
                          "the model's own", optional=True)]
    problems = [p for p in found if p]
    if not problems and subject not in prompt:
        problems.append(f"subject {subject!r} does not occur in prompt {prompt!r}: the subject "
                        "must appear verbatim in the prompt")
    if problems:
        raise RequestError("causal trace: " + "; ".join(problems))
    if kind not in KINDS:
        raise ArgumentError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    for name, value, least in (("samples", samples, 1), ("window", window, 1)):
        if value is None and name == "window":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ArgumentError(f"{name} must be an int >= {least}, got {value!r}")
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float))
                              or not noise >= 0 or noise == float("inf")):
        raise ArgumentError(f"noise must be a finite number >= 0 (the noise's standard "
                            f"deviation; 0 corrupts nothing), got {noise!r}")


def require_matplotlib() -> None:
    """Raise :class:`MissingDependencyError` saying how to install matplotlib when it is
    missing (drawing traces needs it; tracing does not)."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "drawing traces needs matplotlib, which is not installed: "
            "pip install 'editmethods[plots]' (or pip install matplotlib)"
        ) from None


def trace_all(model: torch.nn.Module, tokenizer: Any, prompt: str, subject: str,
              kinds: Sequence[Kind] = KINDS, **kwargs: Any) -> dict[str, TraceResult]:
    """:func:`causal_trace` for each of ``kinds`` (same noise scale for all)."""
    for kind in kinds:
        check_trace_arguments(prompt, subject, kind=kind, answer=kwargs.get("answer"),
                              samples=kwargs.get("samples", 10), noise=kwargs.get("noise"),
                              window=kwargs.get("window"))
    if kwargs.get("noise") is None:
        kwargs["noise"] = embedding_noise_scale(
            model, tokenizer, kwargs.pop("noise_texts", None) or [subject],
            architecture=kwargs.get("architecture"))
    return {k: causal_trace(model, tokenizer, prompt, subject, kind=k, **kwargs) for k in kinds}


def strongest_layer(
    model: torch.nn.Module,
    tokenizer: Any,
    architecture: Architecture | None,
    requests: Sequence[Any],
    *,
    kind: Kind = "mlp",
    **kwargs: Any,
) -> int:
    """The layer where restoring ``kind`` at the subject's last token recovers the answer
    most, averaged over ``requests`` (objects with ``prompt`` and ``subject``, e.g.
    :class:`~editmethods.types.EditRequest`).

    For ``locate`` hooks of locate-then-edit methods::

        layer = strongest_layer(model, tokenizer, architecture, requests, kind="mlp")

    The answer traced is each prompt's greedy answer before the edit (what the model
    recalls now). The noise scale is 3σ of the embeddings over all requests' subjects
    unless ``noise`` is given; other keyword arguments go to :func:`causal_trace`.
    """
    if not requests:
        raise RequestError("strongest_layer needs at least one request")
    if kwargs.get("noise") is None:
        kwargs["noise"] = embedding_noise_scale(model, tokenizer, [r.subject for r in requests],
                                                architecture=architecture)
    total: torch.Tensor | None = None
    for r in requests:
        result = causal_trace(model, tokenizer, r.prompt, r.subject, kind=kind,
                              architecture=architecture, **kwargs)
        row = result.indirect_effect[result.subject_range[1]]
        total = row if total is None else total + row
    assert total is not None  # requests is not empty
    return int(torch.argmax(total))


def _printable(token: str) -> str:
    # byte-level tokens can decode to control characters that no font draws
    return repr(token)[1:-1] if not token.isprintable() else token


def plot_traces(results: Sequence[TraceResult], path: str | Path) -> Path:
    """Draw one ROME-style heatmap per result, side by side, to ``path``.

    Needs matplotlib (``pip install editmethods[plots]``). The Agg canvas is used directly,
    so no global matplotlib backend is set.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results:
        raise ArgumentError("plot_traces: no trace results to plot; pass what causal_trace "
                            "returned")
    n_tokens = len(results[0].tokens)
    fig = Figure(figsize=(3.6 * len(results) + 0.6, 0.9 + 0.28 * n_tokens), dpi=150,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, r in zip(axes, results):
        labels = [_printable(t) + ("*" if r.subject_range[0] <= i <= r.subject_range[1] else "")
                  for i, t in enumerate(r.tokens)]
        mesh = ax.pcolor(r.scores.numpy(), cmap=_CMAP[r.kind], vmin=r.low_score)
        ax.invert_yaxis()
        ax.set_yticks([0.5 + i for i in range(len(labels))])
        ax.set_yticklabels(labels, fontsize=8)
        step = max(1, r.n_layers // 8)
        ax.set_xticks([0.5 + i for i in range(0, r.n_layers, step)])
        ax.set_xticklabels([str(i) for i in range(0, r.n_layers, step)], fontsize=8)
        if r.kind == "hidden":
            ax.set_title("Restoring the residual stream", fontsize=9)
            ax.set_xlabel("single restored layer", fontsize=8)
        else:
            name = "MLP" if r.kind == "mlp" else "Attn"
            ax.set_title(f"Restoring {name} outputs", fontsize=9)
            ax.set_xlabel(f"center of {r.window} restored {name} layer(s)", fontsize=8)
        bar = fig.colorbar(mesh, ax=ax)
        bar.ax.tick_params(labelsize=7)
        bar.ax.set_title(f"p({_printable(r.answer.strip())})", fontsize=8)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    except OSError as exc:
        raise ArgumentError(f"cannot write the heatmap {path}: {exc.strerror or exc}; give a "
                            "path in a folder you can write") from None
    except ValueError as exc:  # an extension matplotlib cannot write
        raise ArgumentError(f"cannot write the heatmap {path}: {exc}; use .png, .pdf or "
                            ".svg") from None
    return path

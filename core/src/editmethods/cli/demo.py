"""``editmethods demo``: what a model believes, one edit, the answers after, an exact undo.

The default model is the pretrained ``smollm2-135m`` (SmolLM2-135M-Instruct, from the
``editmethods-smollm2`` plugin) and the facts come from the examples its alias names;
``--model testbed-gpt2`` runs the bundled reference model on its benchmark's test split.
``--model`` and ``--data`` take any model and any CounterFact-style file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click

from editmethods.cli._common import model_options

#: Methods tried in this order when ``--method auto``.
PREFERENCE = ("rome", "memit", "ft")
DEFAULT_MODEL = "smollm2-135m"


def pick_method(installed: Sequence[str]) -> str:
    """The first installed method of :data:`PREFERENCE` (then any installed method).

    ``--method auto`` first looks among the methods whose package ships hyper-parameters for
    the model (``hparams/<alias>.yaml``) and uses this only when none does."""
    for name in PREFERENCE:
        if name in installed:
            return name
    if installed:
        return sorted(installed)[0]
    raise click.ClickException("no editing method is installed (pip install editmethods-rome)")


def _short(text: str, n: int = 4) -> str:
    """The answer part of a continuation: up to the first full stop or line end, n words."""
    text = text.strip().split("\n")[0]
    cut = text.find(". ")
    text = text[:cut] if cut > 0 else text.rstrip(".")
    return " ".join(text.split()[:n])


def _knows(answer: str, expected: str) -> bool:
    return answer.strip().startswith(expected.strip())


def _probes(req: Any) -> list[tuple[str, str, str | None]]:
    """(kind, prompt, true answer) of what the demo shows: the edited prompt, a held-out
    paraphrase, two neighbours, two other facts of the same subject."""
    probes: list[tuple[str, str, str | None]] = [("edited prompt", req.prompt, req.ground_truth)]
    if req.rephrase_prompts:
        probes.append(("held-out paraphrase", req.rephrase_prompts[0], req.ground_truth))
    probes += [("neighbour", p.prompt, p.answer)
               for p in [p for p in req.locality if p.kind == "neighborhood"][:2]]
    probes += [("same subject, other fact", p.prompt, p.answer)
               for p in [p for p in req.locality if p.kind == "relation_specificity"][:2]]
    return probes


def pick_case(editor: Any, requests: Sequence[Any], limit: int = 100) -> Any:
    """A request whose fact, paraphrase and first neighbour the model gets right; among the
    first ``limit``, one where it also knows every other fact shown, if there is one."""
    fallback = None
    for r in requests[:limit]:
        if not (r.ground_truth and r.rephrase_prompts
                and any(p.kind == "neighborhood" for p in r.locality)):
            continue
        probes = _probes(r)
        known = [a is not None and _knows(editor.answer(p, max_new_tokens=3), a)
                 for _, p, a in probes[:3]]
        if not all(known):
            continue
        if all(a is not None and _knows(editor.answer(p, max_new_tokens=3), a)
               for _, p, a in probes[3:]):
            return r
        fallback = fallback or r
    if fallback is not None:
        return fallback
    raise click.ClickException(
        f"the model answers none of the first {min(limit, len(requests))} cases right "
        "(prompt, paraphrase and a neighbour); pick one with --case")


def register(cli: click.Group) -> None:
    @cli.command(name="demo")
    @click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                  help="Model alias, local path or hub id (testbed-gpt2: the bundled reference "
                       "model).")
    @model_options
    @click.option("--data", default=None,
                  help="Facts to pick the demo edit from (CounterFact-style file); default: the "
                       "examples the model's alias names.")
    @click.option("--method", default="auto", show_default=True,
                  help=f"Editing method; auto = the first installed of {', '.join(PREFERENCE)}.")
    @click.option("--hparams", default=None,
                  help="Hyper-parameter file; default: the method package's file for this model.")
    @click.option("--case", "case_index", type=int, default=None,
                  help="Index of the record to edit (default: the first one the model knows).")
    def demo_command(model_name, gguf_file, dtype, device, data, method, hparams,
                     case_index) -> None:
        """Show a model's beliefs, edit one fact, show the answers after, and undo it exactly."""
        import torch
        from transformers.utils import logging as hf_logging

        from editmethods import EditmethodsError, Editor
        from editmethods.evaluation.benchmarking import reference_hparams
        from editmethods.evaluation.loaders import load_requests
        from editmethods.fingerprint import model_fingerprint
        from editmethods.scoring import model_config

        hf_logging.disable_progress_bar()  # the demo's output is the story; no loading bars
        torch.manual_seed(0)
        started = time.perf_counter()
        try:
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file, dtype=dtype,
                                            device=device)
            if data is None:
                alias = editor.plugins.model_aliases().get(model_name)
                data = alias.examples if alias is not None else None
            if data is None:
                raise click.ClickException(
                    f"{model_name!r} names no example facts: give --data (a CounterFact-style "
                    "file)")
            requests = load_requests(data)
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(
                f"cannot load model {model_name!r}: {exc} (see `editmethods models`)") from None
        n_params = sum(p.numel() for p in editor.model.parameters())
        click.echo(f"model {model_name}: {model_config(editor.model).model_type}, "
                   f"{n_params / 1e6:.2f}M parameters")
        if case_index is not None:
            if not 0 <= case_index < len(requests):
                raise click.ClickException(f"--case must be in 0..{len(requests) - 1}")
            req = requests[case_index]
        else:
            req = pick_case(editor, requests)
        if method == "auto":
            # Prefer a method whose package ships hyper-parameters tuned for this model.
            tuned = [m for m in PREFERENCE
                     if reference_hparams(editor.plugins, m, model_name) is not None]
            method = tuned[0] if tuned else pick_method(list(editor.plugins.methods))
        if hparams is None:
            hparams = reference_hparams(editor.plugins, method, model_name)

        probes = _probes(req)
        edited_kinds = ("edited prompt", "held-out paraphrase")

        def answers() -> list[str]:
            return [_short(editor.answer(prompt, max_new_tokens=6)) for _, prompt, _ in probes]

        def show(title: str, now: list[str], before: list[str] | None = None,
                 edited: bool = False) -> None:
            click.echo(f"\n{title}")
            for (kind, prompt, truth), answer, old in zip(probes, now, before or now):
                if edited and kind in edited_kinds:
                    good, note = _knows(answer, req.target_new), f"should be {req.target_new}"
                elif before is not None:
                    good, note = answer == old, f"changed: was {old}"
                else:
                    good, note = truth is not None and _knows(answer, truth), f"true: {truth}"
                click.echo(f"  {'✓' if good else '✗'} [{kind}] {prompt} → {answer}"
                           + ("" if good else f"   ({note})"))

        click.echo(f"\nWhat the model believes about {req.subject} and its neighbours "
                   "(✓ = the true answer):")
        original = answers()
        show("before the edit:", original)
        digest = model_fingerprint(editor.model, buffers=True)
        click.echo(f"\nediting with {method} (hparams: {hparams or 'method defaults'}): "
                   f"{req.prompt} → {req.target_new}   (was {req.ground_truth})")
        try:
            handle = editor.edit(req, method, hparams)
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"edit {handle.edit_id} took {handle.seconds:.2f} s")
        show(f"after the edit (✓ = says {req.target_new} where it should, unchanged elsewhere):",
             answers(), original, edited=True)
        editor.rollback(handle)
        restored = model_fingerprint(editor.model, buffers=True) == digest
        show("after rollback (✓ = the same answer as before the edit):", answers(), original)
        click.echo(f"\nweights bit-identical to before the edit: {'yes' if restored else 'NO'} "
                   f"(sha256 {digest[:16]}…)")
        click.echo(f"demo took {time.perf_counter() - started:.1f} s")
        if not restored:
            raise click.ClickException("rollback did not restore the weights exactly")

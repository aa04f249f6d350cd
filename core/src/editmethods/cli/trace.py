"""``editmethods trace``: causal tracing of one fact, drawn as ROME-style heatmaps."""

from __future__ import annotations

import click

from editmethods.cli._common import check_writable, model_options


def register(cli: click.Group) -> None:
    @cli.command(name="trace")
    @click.option("--model", "model_name", required=True,
                  help="Model alias (see `editmethods models`), local path or hub id.")
    @click.option("--prompt", required=True, help="A prompt the model completes with the fact.")
    @click.option("--subject", required=True, help="The subject in the prompt (its embeddings are corrupted).")
    @click.option("--kind", type=click.Choice(["hidden", "mlp", "attn", "all"]), default="all",
                  show_default=True, help="Which states to restore.")
    @click.option("--answer", default=None, help="Answer to trace (default: the model's greedy answer).")
    @click.option("--samples", type=click.IntRange(min=1), default=10, show_default=True,
                  help="Noise draws per state.")
    @click.option("--noise", type=click.FloatRange(min=0), default=None,
                  help="Noise std (default: 3 x the std of the subject's embeddings).")
    @click.option("--window", type=click.IntRange(min=1), default=None,
                  help="MLP/attn layers restored together (default: 10, at most a fifth of the depth).")
    @click.option("--out", type=click.Path(dir_okay=False), default="trace.png", show_default=True,
                  help="The heatmap image (one panel per kind).")
    @click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
                  help="Also write the scores as JSON here.")
    @model_options
    def trace_command(model_name, prompt, subject, kind, answer, samples, noise, window, out,
                      json_out, device, dtype, gguf_file) -> None:
        """Corrupt the subject, restore each state, and show which restore the answer."""
        from editmethods import EditmethodsError, Editor
        from editmethods.cli._common import write_json
        from editmethods.toolkit.causal_trace import (
            KINDS,
            check_trace_arguments,
            plot_traces,
            require_matplotlib,
            trace_all,
        )

        kinds = KINDS if kind == "all" else (kind,)
        try:
            # Everything that can be checked without the model is checked before it loads.
            check_trace_arguments(prompt, subject, answer=answer, samples=samples, noise=noise,
                                  window=window)
            require_matplotlib()
            check_writable(out, option="--out")
            if json_out:
                check_writable(json_out, option="--json")
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file,
                                            dtype=dtype, device=device)
            results = trace_all(editor.model, editor.tokenizer, prompt, subject, kinds=kinds,
                                architecture=editor.architecture, answer=answer,
                                samples=samples, noise=noise, window=window)
        except (EditmethodsError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        first = next(iter(results.values()))
        click.echo(f"prompt:  {prompt}")
        click.echo(f"tokens:  {list(first.tokens)} (subject: tokens "
                   f"{first.subject_range[0]}..{first.subject_range[1]})")
        click.echo(f"answer:  {first.answer!r}  p(clean)={first.high_score:.4f}  "
                   f"p(corrupted)={first.low_score:.4f}  noise std={first.noise:.4f}")
        for k, r in results.items():
            layer = r.strongest_layer()
            click.echo(f"{k:>6}: strongest layer at the subject's last token: {layer} "
                       f"(p={float(r.scores[r.subject_range[1], layer]):.4f}, window {r.window})")
        try:
            click.echo(f"heatmap: {plot_traces(list(results.values()), out)}")
            if json_out:
                scores = {k: r.to_dict() for k, r in results.items()}
                click.echo(f"scores:  {write_json(json_out, scores)}")
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None

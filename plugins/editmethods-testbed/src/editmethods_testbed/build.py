"""The build: world -> tokenizer -> training -> measurement -> save -> benchmark export.

Run ``editmethods build-testbed`` (with the core installed) or
``python -m editmethods_testbed.build``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import click

from editmethods_testbed import ARCHES, PACKAGE_DIR

# Training steps per architecture for the full world (about 10 CPU-minutes each on 1 thread).
DEFAULT_STEPS = {"gpt2": 1200, "llama": 1000}
# Subject-attention masking in training, as the bundled models were built: half of the
# subject occurrences masked, so that the models resolve a person at the subject's last
# token, where ROME and MEMIT edit (see the README).
DEFAULT_SUBJECT_MASK_P = 0.5


def build(
    out: str | Path | None = None,
    subjects: int = 300,
    arch: str = "both",
    seed: int = 0,
    steps: int | None = None,
    countries: int = 50,
    threads: int = 1,
    progress: bool = True,
    export_data: bool = True,
    model_kwargs: dict | None = None,
    subject_mask_p: float = DEFAULT_SUBJECT_MASK_P,
    **train_kwargs,
) -> dict:
    """Build the world, train and save the model(s), export the benchmark.

    :param out: folder that receives ``models/<arch>/`` and ``data/``; default: the package.
    :param subjects: invented people in the world (5 facts each).
    :param arch: "gpt2", "llama" or "both".
    :param steps: training steps per model (default: ``DEFAULT_STEPS``).
    :param subject_mask_p: share of subject occurrences whose earlier tokens later positions
        may not attend to in training (default: ``DEFAULT_SUBJECT_MASK_P``, the bundled builds).
    :return: ``{arch: manifest}`` plus ``"data": {split: path}``.
    """
    import torch

    from editmethods_testbed import export as export_mod
    from editmethods_testbed import train as tr
    from editmethods_testbed.world import build_world

    torch.set_num_threads(threads)
    out = Path(out) if out is not None else PACKAGE_DIR
    archs = ARCHES if arch == "both" else (arch,)
    for a in archs:
        if a not in ARCHES:
            raise click.BadParameter(f"unknown arch {a!r}: gpt2, llama or both")
    t0 = time.time()
    world = build_world(n_people=subjects, seed=seed, n_countries=countries)
    tok = tr.train_tokenizer(world)
    result: dict = {}
    for a in archs:
        t1 = time.time()
        n_steps = steps if steps is not None else DEFAULT_STEPS[a]
        model, tok, info = tr.train(world, arch=a, seed=seed, steps=n_steps, tok=tok,
                                    progress=progress, threads=threads, model_kwargs=model_kwargs,
                                    subject_mask_p=subject_mask_p, **train_kwargs)
        result[a] = finish_model(model, tok, world, info, out / "models" / a, seed)
        result[a]["build_seconds"] = round(time.time() - t1, 1)
        tr.save_manifest(out / "models" / a, result[a])
        recall = result[a]["recall_percent"]
        if progress:
            click.echo(f"{a}: " + json.dumps({k: v for k, v in recall.items() if not k.startswith("n_")}))
    if export_data:
        result["data"] = {k: str(v) for k, v in export_mod.export(world, out / "data").items()}
    result["total_seconds"] = round(time.time() - t0, 1)
    return result


def _git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001 - informational only
        return None


def finish_model(model, tok, world, info: dict, out_dir: str | Path, seed: int = 0) -> dict:
    """Measure a trained model on its world and save it with its manifest. Returns the manifest."""
    import torch

    from editmethods_testbed import train as tr

    t2 = time.time()
    tok.model_max_length = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    recall = tr.measure_recall(model, tok, world, seed)
    keys = tr.key_distinctness(model, tok, world)
    a = model.config.model_type
    manifest = {
        "name": f"testbed-{a}",
        "architecture": a,
        "model_class": type(model).__name__,
        "config": {k: getattr(model.config, k) for k in (
            "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")},
        "seed": seed,
        "world": world.summary(),
        "training": info,
        "measure_seconds": round(time.time() - t2, 1),
        "recall_percent": recall,
        "key_distinctness": keys,
        "tokenization": tr.tokenization_stats(tok, world),
        "environment": {"python": platform.python_version(), "torch": torch.__version__},
        "code_commit": _git_commit(),
        "phrasing_protocol": (
            "trained: phrasings trained for this fact; heldout: the fact's one held-out "
            "phrasing (trained for other subjects); never_trained: a phrasing never trained "
            "for any subject; people_*: the same on invented people only; two_hop_untrained: "
            "birth country of val/test people (never trained); in_context_*: 'New Fact: ... "
            "Prompt: ...' on val/test people (never in demonstrations): copy = same prompt, "
            "update_heldout = held-out phrasing, retain = the person's other relation"
        ),
    }
    return tr.save(model, tok, out_dir, manifest)


@click.command("build-testbed")
@click.option("--subjects", default=300, show_default=True, help="Invented people in the world.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for models/ and data/ (default: the installed package itself).")
@click.option("--arch", type=click.Choice(["gpt2", "llama", "both"]), default="both", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--steps", type=int, default=None, help="Training steps per model (default: gpt2 1200, llama 1000).")
@click.option("--countries", default=50, show_default=True, help="Real countries in the world.")
@click.option("--threads", default=1, show_default=True, help="torch CPU threads.")
@click.option("--subject-mask-p", type=click.FloatRange(0.0, 1.0), default=DEFAULT_SUBJECT_MASK_P,
              show_default=True,
              help="Probability per subject occurrence in a fact sentence that later positions "
                   "may not attend to the subject's earlier tokens (pushes the model to resolve "
                   "subjects at their last token, where ROME/MEMIT edit; 0 = plain training; "
                   "the bundled models were built with the default).")
def build_command(subjects, out, arch, seed, steps, countries, threads, subject_mask_p):
    """Build the testbed: fact world, reference model(s), benchmark files."""
    target = Path(out) if out else PACKAGE_DIR
    click.echo(f"building the testbed into {target}")
    result = build(out=target, subjects=subjects, arch=arch, seed=seed, steps=steps,
                   countries=countries, threads=threads, subject_mask_p=subject_mask_p)
    click.echo(f"done in {result['total_seconds']} s")


if __name__ == "__main__":  # pragma: no cover
    build_command()

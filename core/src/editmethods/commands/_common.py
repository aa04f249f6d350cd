"""Options and helpers shared by the core's evaluation commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--gguf-file``, ``--dtype`` and ``--device``: how to load ``--model``.

    The command receives ``gguf_file``, ``dtype`` and ``device``; pass them on as
    ``Editor.from_pretrained(model_name, gguf_file=gguf_file, dtype=dtype, device=device)``.
    Public as ``editmethods.cli.model_options``.
    """
    f = click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")(f)
    f = click.option("--dtype", default=None,
                     help="float32, float16, bfloat16 (default: the checkpoint's; GGUF: float32)")(f)
    f = click.option("--gguf-file", default=None,
                     help="A GGUF file in the --model folder or hub repo (or a path to one); "
                          "dequantized once, then loaded from $EDITMETHODS_CACHE/models.")(f)
    return f


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--metrics", default=None,
                     help="Comma-separated metric names (default: every metric whose inputs exist).")(f)
    f = click.option("--mode", type=click.Choice(["single", "batch", "sequential"]), default=None,
                     help="single: each edit rolled back before the next (default); batch: one "
                          "edit of all cases; sequential: edits accumulate.")(f)
    f = click.option("--offset", type=int, default=None, help="Skip this many records first.")(f)
    f = click.option("-n", "--n", "n", type=int, default=None, help="Number of cases (default: all).")(f)
    f = click.option("--format", "data_format", default=None,
                     help="counterfact, easyedit, zsre-mend or knowedit (default: detected).")(f)
    f = click.option("--no-progress", is_flag=True, help="No progress bars.")(f)
    return f


def split_metrics(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean_json(data), indent=2, default=str, allow_nan=False) + "\n")
    return path


def clean_json(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` (strict JSON has no NaN)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value

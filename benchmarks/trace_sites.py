"""Where does a model resolve the subject? Causal traces averaged over known facts.

    python benchmarks/trace_sites.py --model testbed-gpt2 -n 20

For each of the first N test facts the model answers correctly (distinct subjects), the
subject's embeddings are corrupted and one hidden state at a time is restored
(``editmethods.toolkit.causal_trace``). Printed: the share of the answer's probability
(restored − corrupted) / (clean − corrupted) that the best single layer recovers at the
subject's last token, at any subject token, and at the prompt's last token. ROME and MEMIT
edit the MLPs at the subject's last token; they are at home on a model where that site carries
the fact (as the ROME paper's traces of GPT-2 XL show), and must overwrite the representation
outright where it does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm.auto import tqdm

    from editmethods import Editor
    from editmethods.evaluation.loaders import load_requests
    from editmethods.toolkit.causal_trace import causal_trace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="testbed-gpt2")
    parser.add_argument("--data", default="pkg:editmethods_testbed/data/test.json")
    parser.add_argument("-n", type=int, default=20, help="facts to trace")
    parser.add_argument("--out", default=None, help="write the per-fact shares as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    editor = Editor.from_pretrained(args.model)
    known, subjects = [], set()
    for r in load_requests(args.data):
        if len(known) == args.n:
            break
        if not r.ground_truth or r.subject in subjects:
            continue
        if editor.answer(r.prompt, max_new_tokens=1).strip() == r.ground_truth.split()[0]:
            known.append(r)
            subjects.add(r.subject)
    rows = []
    for r in tqdm(known, desc="causal traces"):
        t = causal_trace(editor.model, editor.tokenizer, r.prompt, r.subject, kind="hidden",
                         progress=False)
        share = (t.scores - t.low_score) / max(t.high_score - t.low_score, 1e-9)
        first, last = t.subject_range
        rows.append({"prompt": r.prompt, "subject_last": float(share[last].max()),
                     "any_subject_token": float(share[first:last + 1].max()),
                     "last_token": float(share[-1].max())})
    if not rows:
        print("the model answers none of the facts correctly", file=sys.stderr)
        return 1
    print(f"{args.model}: {len(rows)} facts; share of the answer's probability recovered by "
          "restoring one hidden state (best layer):")
    for site in ("subject_last", "any_subject_token", "last_token"):
        print(f"  {site:<18} {sum(r[site] for r in rows) / len(rows):.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

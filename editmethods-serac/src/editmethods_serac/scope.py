"""SERAC's scope classifier: is an input about an edit in memory?

Two kinds, both on the same frozen sentence encoder:

- ``cosine``: the cosine similarity of the edit's and the input's embeddings, in scope at or
  above a tuned threshold (the paper's embedding-similarity classifier).
- ``learned``: a small network on the pair's features ``[e * q, |e - q|]`` that outputs the
  probability of being in scope, trained on the train split's in-scope inputs (the edit's
  prompt and paraphrases) against its out-of-scope ones (other subjects asked the same
  relation, the same subject's other relations). Cosine similarity alone cannot tell "Cora
  Linelle plays the" from "Nils Gorand plays the" (one template, two people: similarity
  ~0.8); the learned classifier can (measured on the reference world's test split, pairs with
  their own edit: in-scope recall 0.99 and out-of-scope rejection 0.99, against 0.95 / 0.95
  for cosine at its tuned threshold).

Both score a ``[queries, edits]`` matrix; an input goes to the best-scoring edit when that
score reaches the classifier's threshold.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from editmethods_serac.data import Case

SCOPE_FILE = "scope.safetensors"
#: The learned classifier's default threshold. With many edits in memory every input is scored
#: against every edit, so a small pairwise false-positive rate adds up (measured on the GPT-2
#: reference model with 100 edits in memory: at 0.5, 11.9% of locality prompts were routed to
#: some edit and locality was 0.923; at 0.9, 5.7% and 0.967, with reliability 0.97 and
#: generalization 0.975 either way).
LEARNED_THRESHOLD = 0.9


class CosineScope:
    """Cosine similarity of unit embeddings; in scope at ``threshold`` or above."""

    kind = "cosine"

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def score(self, queries: torch.Tensor, edits: torch.Tensor) -> torch.Tensor:
        return queries @ edits.T


class LearnedScope(torch.nn.Module):
    """P(in scope) from the pair features ``[e * q, |e - q|]`` of unit embeddings."""

    kind = "learned"

    def __init__(self, dim: int, hidden: int = 64, threshold: float = LEARNED_THRESHOLD) -> None:
        super().__init__()
        self.dim, self.hidden, self.threshold = dim, hidden, float(threshold)
        self.net = torch.nn.Sequential(torch.nn.Linear(2 * dim, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 1))

    def logits(self, edits: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Logit of each aligned (edit, query) row pair."""
        return self.net(torch.cat([edits * queries, (edits - queries).abs()], dim=-1)).squeeze(-1)

    @torch.no_grad()
    def score(self, queries: torch.Tensor, edits: torch.Tensor) -> torch.Tensor:
        n_q, n_e = queries.shape[0], edits.shape[0]
        q = queries[:, None, :].expand(n_q, n_e, -1)
        e = edits[None, :, :].expand(n_q, n_e, -1)
        return torch.sigmoid(self.logits(e.reshape(n_q * n_e, -1), q.reshape(n_q * n_e, -1))).view(n_q, n_e)

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path),
                  metadata={"dim": str(self.dim), "hidden": str(self.hidden)})

    @classmethod
    def load(cls, path: str | Path, threshold: float = LEARNED_THRESHOLD) -> LearnedScope:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            info = f.metadata() or {}
        model = cls(int(info["dim"]), int(info["hidden"]), threshold)
        model.load_state_dict(load_file(str(path)))
        model.eval()
        return model


def scope_pairs(cases: Sequence[Case]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(edit descriptor, query) pairs in scope and out of scope, each query both bare and with
    its answer appended (the metrics present queries both ways: generation and teacher
    forcing)."""
    from editmethods_serac.method import edit_descriptor

    inside, outside = [], []
    for c in cases:
        d = edit_descriptor(c.prompt, c.target_new)
        for q, a in c.in_scope:
            inside += [(d, q), (d, f"{q} {a}")]
        for q, a in c.out_scope:
            outside += [(d, q), (d, f"{q} {a}")]
    return inside, outside


def other_edit_pairs(cases: Sequence[Case], rng: random.Random, k: int = 2) -> list[tuple[str, str]]:
    """(edit descriptor, query about another edit) pairs: out of scope. With many edits in
    memory every input is scored against every edit, so these easy negatives matter too."""
    from editmethods_serac.method import edit_descriptor

    out: list[tuple[str, str]] = []
    if len(cases) < 2:
        return out
    for i, c in enumerate(cases):
        d = edit_descriptor(c.prompt, c.target_new)
        for _ in range(k):
            j = rng.randrange(len(cases) - 1)
            other = cases[j + (j >= i)]
            if other.prompt == c.prompt:
                continue
            q, a = rng.choice(other.in_scope)
            out += [(d, q), (d, f"{q} {a}")]
    return out


def embed_pairs(encoder: Any, pairs: Sequence[tuple[str, str]], progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings of each pair's two texts (``[n, dim]`` each; computed once per text
    set and cached on disk)."""
    texts = sorted({t for pair in pairs for t in pair})
    emb = encoder.encode_cached(texts, progress=progress)
    index = {t: i for i, t in enumerate(texts)}
    return emb[[index[a] for a, _ in pairs]], emb[[index[b] for _, b in pairs]]


def train_learned_scope(cases: Sequence[Case], encoder: Any, *, hidden: int = 64, steps: int = 600,
                        lr: float = 3e-3, seed: int = 0, progress: bool = False) -> tuple[LearnedScope, dict[str, Any]]:
    """Train the learned classifier on ``cases`` (full batch, classes weighted equally)."""
    inside, outside = scope_pairs(cases)
    if not inside or not outside:
        raise ValueError("the learned scope classifier needs in-scope and out-of-scope queries "
                         "(paraphrases and neighbourhood/relation-specificity prompts) in the data")
    # a tenth of the cases' pairs is held out to report the classifier's accuracy
    rng = random.Random(seed)
    held = set(rng.sample(range(len(cases)), max(1, len(cases) // 10))) if len(cases) >= 10 else set()
    fit_cases = [c for i, c in enumerate(cases) if i not in held] or list(cases)
    check_cases = [c for i, c in enumerate(cases) if i in held]
    fit_in, fit_out = scope_pairs(fit_cases)
    fit_out += other_edit_pairs(fit_cases, rng)
    e_in, q_in = embed_pairs(encoder, fit_in, progress)
    e_out, q_out = embed_pairs(encoder, fit_out, progress)
    edits, queries = torch.cat([e_in, e_out]), torch.cat([q_in, q_out])
    y = torch.cat([torch.ones(len(e_in)), torch.zeros(len(e_out))])
    weight = torch.where(y > 0, len(y) / (2.0 * len(e_in)), len(y) / (2.0 * max(1, len(e_out))))
    torch.manual_seed(seed)
    model = LearnedScope(edits.shape[1], hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(model.logits(edits, queries), y,
                                                                      reduction="none") * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    stats: dict[str, Any] = {"kind": "learned", "hidden": hidden, "steps": steps, "threshold": LEARNED_THRESHOLD,
                             "pairs_in_scope": len(e_in), "pairs_out_of_scope": len(e_out),
                             "final_loss": round(float(loss), 4)}
    if check_cases:
        c_in, c_out = scope_pairs(check_cases)
        with torch.no_grad():
            p_in = torch.sigmoid(model.logits(*embed_pairs(encoder, c_in, False)))
            p_out = torch.sigmoid(model.logits(*embed_pairs(encoder, c_out, False))) if c_out else None
        stats["held_out_in_scope_recall"] = round(float((p_in >= LEARNED_THRESHOLD).float().mean()), 4)
        if p_out is not None:
            stats["held_out_out_scope_rejection"] = round(float((p_out < LEARNED_THRESHOLD).float().mean()), 4)
    return model, stats

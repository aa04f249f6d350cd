"""Precomputed statistics in ROME's / EasyEdit's npz format (``mom2_dataset: npz:PATH``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editmethods.testing import CORPUS, tiny_model, tiny_tokenizer
from editmethods.toolkit.stats import StatisticsError, import_second_moment, second_moment
from editmethods.toolkit.tracing import trace

TEXTS = sorted(set(CORPUS))
MODULE = "transformer.h.1.mlp.c_proj"


def _keys(model, tok, module):
    rows = []
    for t in TEXTS:
        ids = torch.tensor([tok(t).input_ids])
        with torch.no_grad(), trace(model, [module], retain_input=True) as rec:
            model(input_ids=ids)
        rows.append(rec[module].input[0])
    return torch.cat(rows).float()


def write_rome_npz(path, mom2_sum: np.ndarray, count: int, sample_size: int = 100_000):
    """What kmeng01/rome's layer_stats writes: ``CombinedStat(mom2=SecondMoment())``'s
    state_dict (keys prefixed ``mom2.``, ``mom2`` the *sum* of k kᵀ, ``count`` the tokens)
    plus tally's ``sample_size``, saved with ``numpy.savez``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{"mom2.constructor": "util.runningstats.SecondMoment()",
                      "mom2.count": count, "mom2.mom2": mom2_sum, "sample_size": sample_size})
    return path


@pytest.fixture
def rome_layout(tmp_path):
    """``<stats>/<model>/wikipedia_stats/<module>_float32_mom2_100000.npz`` for layers 0, 1."""
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    folder = tmp_path / "stats" / "tiny-gpt2" / "wikipedia_stats"
    for layer in (0, 1):
        module = f"transformer.h.{layer}.mlp.c_proj"
        k = _keys(model, tok, module)
        write_rome_npz(folder / f"{module}_float32_mom2_100000.npz", (k.T @ k).numpy(), len(k))
    return model, tok, folder


def test_rome_file_matches_our_own_statistics(rome_layout):
    model, tok, folder = rome_layout
    file = folder / f"{MODULE}_float32_mom2_100000.npz"
    imported = import_second_moment(file, model, MODULE)
    ours = second_moment(model, tok, MODULE, TEXTS, n_samples=len(TEXTS), cache=False,
                         progress=False)
    assert imported.n_tokens == ours.n_tokens and imported.n_samples == 100_000
    assert imported.matrix.dtype == torch.float64
    torch.testing.assert_close(imported.matrix, ours.matrix, rtol=1e-4, atol=1e-5)
    # the same through second_moment: a file, a folder of ROME's layout, a {module} template
    for spec in (f"npz:{file}", f"npz:{folder}", f"npz:{folder}/{{module}}_float32_mom2_100000.npz"):
        loaded = second_moment(model, tok, MODULE, spec, dtype="float32")
        assert loaded.matrix.dtype == torch.float32 and loaded.key == imported.key
    # one folder serves every layer (MEMIT)
    assert second_moment(model, tok, "transformer.h.0.mlp.c_proj", f"npz:{folder}").dim == 128


def test_wrong_shape_and_missing_keys(tmp_path):
    model = tiny_model("gpt2")
    bad = write_rome_npz(tmp_path / "x.npz", np.eye(64, dtype=np.float32), 10)
    with pytest.raises(StatisticsError, match="64×64.*128 wide"):
        import_second_moment(bad, model, MODULE)
    other = tmp_path / "other.npz"
    np.savez(other, mean=np.zeros(128))
    with pytest.raises(StatisticsError, match="keys: mean.*mom2.mom2"):
        import_second_moment(other, model, MODULE)
    bare = tmp_path / "bare.npz"  # a SecondMoment saved on its own
    np.savez(bare, mom2=np.eye(128, dtype=np.float32) * 5, count=5)
    torch.testing.assert_close(import_second_moment(bare, model, MODULE).matrix,
                               torch.eye(128, dtype=torch.float64))
    with pytest.raises(StatisticsError, match="does not exist"):
        import_second_moment(tmp_path / "none.npz", model, MODULE)
    with pytest.raises(StatisticsError, match="no file for module"):
        import_second_moment(tmp_path, model, "transformer.h.0.mlp.c_proj")


def test_not_a_second_moment_is_refused(tmp_path):
    model = tiny_model("gpt2")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 128)).astype(np.float32)
    with pytest.raises(StatisticsError, match="not symmetric"):
        import_second_moment(write_rome_npz(tmp_path / "a.npz", a, 3), model, MODULE)
    indefinite = np.diag(np.r_[np.ones(127), -1.0]).astype(np.float32) + 0.0
    with pytest.raises(StatisticsError, match="negative entries on the diagonal"):
        import_second_moment(write_rome_npz(tmp_path / "b.npz", indefinite, 3), model, MODULE)
    v = np.ones(128, dtype=np.float32) / np.sqrt(128)
    psd_diag_but_not_psd = np.eye(128, dtype=np.float32) - 3 * np.outer(v, v)  # diag > 0, eig -2
    with pytest.raises(StatisticsError, match="not positive semi-definite"):
        import_second_moment(write_rome_npz(tmp_path / "c.npz", psd_diag_but_not_psd, 3), model,
                             MODULE)
    nan = np.eye(128, dtype=np.float32)
    nan[0, 0] = np.nan
    with pytest.raises(StatisticsError, match="NaN"):
        import_second_moment(write_rome_npz(tmp_path / "d.npz", nan, 3), model, MODULE)


def test_pickled_content_is_never_loaded(tmp_path):
    model = tiny_model("gpt2")
    path = tmp_path / "pickled.npz"
    np.savez(path, **{"mom2.mom2": np.array([{"x": 1}], dtype=object), "mom2.count": 3})
    with pytest.raises(StatisticsError, match="allow_pickle"):
        import_second_moment(path, model, MODULE)


def test_exported_statistics_read_back_equal(tmp_path):
    from editmethods.toolkit.stats_import import export_second_moment

    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    ours = second_moment(model, tok, MODULE, TEXTS, n_samples=len(TEXTS), cache=False,
                         progress=False)
    path = export_second_moment(ours, tmp_path / "stats", precision="float64")
    assert path.name == f"{MODULE}_float64_mom2_{ours.n_samples}.npz"
    back = second_moment(model, tok, MODULE, f"npz:{tmp_path / 'stats'}", progress=False)
    torch.testing.assert_close(back.matrix, ours.matrix.double(), rtol=1e-10, atol=1e-12)
    assert (back.n_tokens, back.n_samples) == (ours.n_tokens, ours.n_samples)
    assert not list((tmp_path / "stats").glob("*.tmp"))  # written under a temporary name


def test_npz_spec_names_a_folder_inside_an_installed_package(monkeypatch, tmp_path):
    import sys

    from editmethods.toolkit.stats_import import export_second_moment, find_npz

    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    pkg = tmp_path / "site" / "statspkg"
    (pkg / "statistics").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    ours = second_moment(model, tok, MODULE, TEXTS, n_samples=len(TEXTS), cache=False,
                         progress=False)
    export_second_moment(ours, pkg / "statistics")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert find_npz("npz:pkg:statspkg/statistics", MODULE).parent == pkg / "statistics"
    assert "statspkg" not in sys.modules  # located, not imported
    with pytest.raises(StatisticsError, match="no file for module"):
        find_npz("npz:pkg:statspkg/statistics", "transformer.h.0.mlp.c_proj")


def test_stats_command_computes_caches_and_exports(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from editmethods.cli import build_cli

    monkeypatch.setenv("EDITMETHODS_CACHE", str(tmp_path / "cache"))
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS))
    args = ["stats", "--model", str(tmp_path / "model"), "--layers", "0,1", "--corpus",
            str(corpus), "-n", "50", "--export", str(tmp_path / "out")]
    first = CliRunner().invoke(build_cli(), args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert first.output.count("(computed;") == 2
    assert sorted(p.name.split("_")[0] for p in (tmp_path / "out").glob("*.npz")) == [
        "transformer.h.0.mlp.c", "transformer.h.1.mlp.c"]
    again = CliRunner().invoke(build_cli(), args, catch_exceptions=False)
    assert again.output.count("(cache;") == 2
    bad = CliRunner().invoke(build_cli(), ["stats", "--model", str(tmp_path / "model"),
                                           "--layers", "0,x"])
    assert bad.exit_code == 2 and "--layers" in bad.output
    outside = CliRunner().invoke(build_cli(), ["stats", "--model", str(tmp_path / "model"),
                                               "--layers", "7", "--corpus", str(corpus)])
    assert outside.exit_code == 1 and "outside the model" in outside.output

"""Precomputed statistics from ROME's and EasyEdit's ``.npz`` files.

ROME (kmeng01/rome) and EasyEdit publish and cache ``E[k kᵀ]`` as
``<stats_dir>/<model>/<dataset>_stats/<module>_<precision>_mom2_<samples>.npz``, e.g.
``gpt2-xl/wikipedia_stats/transformer.h.17.mlp.c_proj_float32_mom2_100000.npz``, written by
their ``runningstats`` module: a ``CombinedStat(mom2=SecondMoment())`` saved with
``numpy.savez``, i.e. the keys ``mom2.mom2`` (the *sum* of ``k kᵀ`` over every token,
``[d_in, d_in]``), ``mom2.count`` (the number of tokens), ``mom2.constructor`` (a string) and
``sample_size`` (the number of texts). A ``SecondMoment`` saved on its own has ``mom2`` and
``count``. ``E[k kᵀ]`` is ``mom2 / count``.

Design: such a file is used *directly*, as ``mom2_dataset: npz:PATH`` (or
``second_moment(..., "npz:PATH")``), never copied into our cache under the key of some
"equivalent" corpus: our key hashes the model's weights and the exact corpus and settings,
none of which the file records (another Wikipedia dump, another length cap), so such a key
would claim what nobody checked. ``PATH`` is one file, a folder holding
``<module>_*.npz`` (ROME's layout: one folder serves every layer, as MEMIT needs), or a
template with ``{module}``.

Files are read with ``numpy.load(allow_pickle=False)``: never unpickled. What can be checked
is checked: the shape against the module's input width, finiteness, symmetry and positive
semi-definiteness (up to rounding). What cannot be: that the file was computed on this model
(a fine-tune of the same width passes): that is the file's provenance, and yours to know.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from editmethods.architectures import get_module, weight_layout

__all__ = ["NPZ_PREFIX", "export_second_moment", "find_npz", "import_second_moment",
           "input_width"]

#: The corpus-spec prefix that names precomputed statistics.
NPZ_PREFIX = "npz:"


def input_width(model: torch.nn.Module, module: str) -> int:
    """The width of the input of ``module`` (a ``nn.Linear`` or GPT-2 ``Conv1D``)."""
    mod = get_module(model, module)
    weight = mod.weight
    assert isinstance(weight, torch.Tensor)  # a layer's weight (a Parameter)
    return int(weight.shape[0] if weight_layout(mod) == "in_out" else weight.shape[1])


def find_npz(spec: str | Path, module: str) -> Path:
    """The file a ``npz:`` spec names for ``module``: the file itself, ``{module}`` filled in,
    or the one ``<module>_*.npz`` in a folder; a path or a ``pkg:PACKAGE/path`` spec.

    :raises StatisticsError: when there is no such file, or a folder holds several.
    """
    from editmethods.evaluation.loaders import resolve_data_path
    from editmethods.toolkit._moments import StatisticsError

    text = str(spec).removeprefix(NPZ_PREFIX)
    # pkg:PACKAGE/folder names statistics a package ships (found without importing it)
    path = resolve_data_path(text.replace("{module}", module)).expanduser()
    if path.is_dir():
        matches = sorted(p for p in path.glob(f"{module}_*.npz") if p.is_file())
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise StatisticsError(
                f"statistics folder {path} has no file for module {module!r} (expected "
                f"{module}_<precision>_mom2_<samples>.npz, ROME's naming); give the file itself "
                "as npz:FILE"
            )
        raise StatisticsError(
            f"statistics folder {path} has several files for module {module!r} "
            f"({', '.join(p.name for p in matches)}): give one as npz:FILE"
        )
    if not path.is_file():
        raise StatisticsError(f"statistics file {path} does not exist (from {spec!r})")
    return path


def _scalar(value: np.ndarray, what: str, path: Path) -> int:
    from editmethods.toolkit._moments import StatisticsError

    try:
        out = int(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise StatisticsError(f"{path.name}: {what} is not a number ({value!r})") from None
    return out


def _check_psd(matrix: torch.Tensor, path: Path, module: str) -> None:
    """Symmetric, finite, non-negative diagonal, and no eigenvalue below −10⁻⁶·trace (what
    float32 accumulation can leave): checked by a Cholesky factorization of
    ``C + 10⁻⁶·trace(C)·I`` (trace(C) bounds the largest eigenvalue)."""
    from editmethods.toolkit._moments import StatisticsError

    where = f"{path.name} ({module})"
    if not bool(torch.isfinite(matrix).all()):
        raise StatisticsError(f"{where}: the matrix holds NaN or inf")
    scale = float(matrix.abs().max())
    asym = float((matrix - matrix.T).abs().max())
    if asym > 1e-4 * max(scale, 1e-300):
        raise StatisticsError(
            f"{where}: the matrix is not symmetric (max |C - Cᵀ| = {asym:.3g} against entries up "
            f"to {scale:.3g}): not a second moment E[k kᵀ]"
        )
    diag = torch.diagonal(matrix)
    if bool((diag < 0).any()):
        raise StatisticsError(f"{where}: negative entries on the diagonal: not a second moment")
    trace = float(diag.sum())
    if trace <= 0:
        raise StatisticsError(f"{where}: the matrix is zero")
    jitter = 1e-6 * trace * torch.eye(matrix.shape[0], dtype=matrix.dtype)
    if int(torch.linalg.cholesky_ex(matrix + jitter).info) != 0:
        raise StatisticsError(
            f"{where}: the matrix is not positive semi-definite (an eigenvalue below "
            "-1e-6·trace): not a second moment E[k kᵀ]"
        )


def import_second_moment(path: str | Path, model: torch.nn.Module, module: str, *,
                         dtype: torch.dtype = torch.float64, check: bool = True) -> Any:
    """``E[k kᵀ]`` of ``module``'s inputs from a ROME/EasyEdit ``.npz`` file (see the module
    docstring), as a :class:`~editmethods.toolkit.stats.SecondMoment`.

    :param path: the file, a folder of ROME's layout, or a ``{module}`` template (an
        ``npz:`` prefix is allowed).
    :param dtype: of the returned matrix (the division by the count is done in float64).
    :param check: verify symmetry and positive semi-definiteness (a Cholesky factorization,
        O(d³); the shape is always checked).
    :raises StatisticsError: for a missing file, unknown keys, a shape that is not the module's
        input width, or a matrix that is not a second moment.
    """
    file = find_npz(path, module)
    st = file.stat()
    # An edit reads the same file again and again: read and check it once per process while
    # the file is unchanged (path, size and mtime), as the on-disk cache does for computed
    # statistics. The matrix is shared between calls: nothing may write into it in place.
    return _read_npz(str(file.resolve()), st.st_size, st.st_mtime_ns, module,
                     input_width(model, module), dtype, check)


@functools.lru_cache(maxsize=16)
def _read_npz(name: str, size: int, mtime_ns: int, module: str, width: int,
              dtype: torch.dtype, check: bool) -> Any:
    from editmethods.toolkit._moments import SecondMoment, StatisticsError

    file = Path(name)
    try:
        data = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise StatisticsError(f"{file}: not a readable .npz file ({exc})") from None
    with data:
        keys = set(data.files)
        for sum_key, count_key in (("mom2.mom2", "mom2.count"), ("mom2", "count")):
            if sum_key in keys and count_key in keys:
                break
        else:
            raise StatisticsError(
                f"{file.name}: no second moment in it (keys: {', '.join(sorted(keys)) or 'none'}; "
                "expected mom2.mom2 and mom2.count, as ROME's runningstats write)"
            )
        try:
            total = data[sum_key]
            count = _scalar(data[count_key], count_key, file)
            samples = _scalar(data["sample_size"], "sample_size", file) \
                if "sample_size" in keys else 0
        except ValueError as exc:  # an object array: would need pickle, which is never used
            raise StatisticsError(f"{file.name}: {exc}") from None
    if total.ndim != 2 or total.shape[0] != total.shape[1]:
        raise StatisticsError(f"{file.name}: {sum_key} has shape {total.shape}, not a square matrix")
    if total.shape[0] != width:
        raise StatisticsError(
            f"{file.name}: the matrix is {total.shape[0]}×{total.shape[1]}, but the input of "
            f"{module!r} is {width} wide: a file for another model or module"
        )
    if count < 1:
        raise StatisticsError(f"{file.name}: {count_key} is {count}: no tokens were counted")
    matrix = torch.from_numpy(np.asarray(total, dtype=np.float64)) / count
    if check:
        _check_psd(matrix, file, module)
    matrix = ((matrix + matrix.T) / 2).to(dtype).contiguous()
    key = hashlib.sha256(f"npz\x1f{file}\x1f{size}\x1f{mtime_ns}\x1f{module}".encode()).hexdigest()
    return SecondMoment(module=module, matrix=matrix, n_samples=samples, n_tokens=count,
                        key=key, corpus=f"npz {file}", from_cache=True)


def export_second_moment(stats: Any, folder: str | Path, *, precision: str = "float32") -> Path:
    """Write ``stats`` (a :class:`~editmethods.toolkit.stats.SecondMoment`) in ROME's layout, so that
    ``npz:FOLDER`` (ours) and ROME's and EasyEdit's loaders read it:
    ``FOLDER/<module>_<precision>_mom2_<samples>.npz`` with ``mom2.mom2`` (the sum of k kᵀ),
    ``mom2.count`` and ``sample_size``. Written to a temporary name, then renamed.

    :param precision: ``float32`` (ROME's published files) or ``float64``.
    """
    import os
    import tempfile

    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stats.module}_{precision}_mom2_{stats.n_samples}.npz"
    total = (stats.matrix.double() * stats.n_tokens).numpy().astype(precision)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **{"mom2.mom2": total, "mom2.count": np.array(stats.n_tokens),
                            "sample_size": np.array(stats.n_samples)})
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared file is for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

"""Test-wide settings for every package in the repository."""

import os

import pytest

# Tests share two cores with whatever else runs: one thread each is faster than two
# threads fighting (measured 3-9x slower), and results do not depend on thread count.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)
    config.addinivalue_line("markers", "slow: quality tests on reference models (run in CI)")

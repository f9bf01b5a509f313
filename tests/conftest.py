"""Shared fixtures: seeds and small temporary datasets."""

from __future__ import annotations

import pytest
import torch

from tests.system_packages import require


# The suite runs in two pytest-xdist workers on two cores; more torch threads per worker
# only oversubscribe the machine (small ops became up to 100x slower when they did).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    """Seed torch for every test so random inputs are the same run to run."""
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    """Skip GPU-marked tests cleanly where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; this machine has none")
    for item in items:
        # The marker, not the keywords: a parameter id "gpu" is a keyword too.
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Check ``needs("bwrap")``-style marks before any fixture (some take minutes) is set up."""
    for mark in item.iter_markers("needs"):
        for package in mark.args:
            require(package)

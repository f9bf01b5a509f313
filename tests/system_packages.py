"""System packages some tests need: a skip where they are missing, a failure where CI has them.

``make test`` installs them where it can (``scripts/system-packages.sh``, as root with apt). On a
developer's machine that cannot, a test that needs one skips and says how to install it. CI
(``.ci/run``) sets ``LABKIT_CI=1`` and installs them, so there a missing package fails the test
instead of skipping it: a green CI means every one of these tests ran.

Mark a test ``@pytest.mark.needs("bwrap")`` (checked before its fixtures are set up), or call
:func:`require` from a fixture.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from labkit.grading.bwrap import bwrap_available

CHROMIUM = "/usr/bin/chromium"


def _bwrap() -> str | None:
    if bwrap_available():
        return None
    return "bubblewrap does not work here (bwrap_available() is False): apt-get install bubblewrap"


def _chromium() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: pip install -e '.[dev]'"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: apt-get install chromium (make test does, as root)"
    return None


CHECKS = {"bwrap": _bwrap, "chromium": _chromium}


def in_ci() -> bool:
    """Whether this run promised every system package (``LABKIT_CI=1``, set by ``.ci/run``)."""
    return os.environ.get("LABKIT_CI") == "1"


def require(package: str) -> None:
    """Skip the running test when ``package`` does not work here; under ``LABKIT_CI=1``, fail it.

    Args:
        package (str): one of ``"bwrap"``, ``"chromium"``.
    """
    if package not in CHECKS:
        raise ValueError(f"needs({package!r}): expected one of {sorted(CHECKS)}")
    reason = CHECKS[package]()
    if reason is None:
        return
    if in_ci():
        pytest.fail(
            f"{reason}. LABKIT_CI=1 promises it (.ci/run installs it through make test), "
            "so this test fails instead of skipping.",
            pytrace=False,
        )
    pytest.skip(reason)

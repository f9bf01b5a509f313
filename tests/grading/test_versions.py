"""Tests for labkit.grading.versions: every version of a lab kept, each once."""

import hashlib
from datetime import datetime, timedelta, timezone

from labkit.grading.versions import HISTORY, keep_version, versions

T0 = datetime(2026, 12, 1, 10, 2, tzinfo=timezone.utc)


def test_a_version_is_kept_once_with_its_time(tmp_path):
    """Is a version written under submitted_history/ with its time in the name and as the
    file's time, and the same contents at another time not written again?"""
    path = keep_version(tmp_path, "ann", "toy", b"one", when=T0)
    assert path == tmp_path / HISTORY / "ann/toy" / (
        "20261201T100200.000000Z-" + hashlib.sha256(b"one").hexdigest()[:12] + ".ipynb"
    )
    assert path.read_bytes() == b"one"
    assert datetime.fromtimestamp(path.stat().st_mtime, timezone.utc) == T0
    assert keep_version(tmp_path, "ann", "toy", b"one", when=T0 + timedelta(days=1)) is None
    assert [p.name for p in (tmp_path / HISTORY / "ann/toy").iterdir()] == [path.name]


def test_versions_are_the_history_and_the_current_one_in_order(tmp_path):
    """Are the kept versions and the one in submitted/ listed first-first, in UTC, and the
    current one counted once when the history holds the same contents?"""
    later = datetime(2026, 12, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    keep_version(tmp_path, "ann", "toy", b"two", when=later)
    keep_version(tmp_path, "ann", "toy", b"one", when=T0)
    current = tmp_path / "toy.ipynb"
    current.write_bytes(b"three")
    now = T0 + timedelta(days=3)
    found = versions(tmp_path, "ann", "toy", current=(current, now))
    assert [(v.when, v.path.read_bytes()) for v in found] == [
        (T0, b"one"),
        (later, b"two"),
        (now, b"three"),
    ]
    current.write_bytes(b"one")
    assert len(versions(tmp_path, "ann", "toy", current=(current, now))) == 2
    assert versions(tmp_path, "bob", "toy", current=None) == []

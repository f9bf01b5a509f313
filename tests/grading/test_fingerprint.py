"""Tests for labkit.grading.fingerprint: normalized tokens, winnowing, set similarity."""

import random

import pytest

from labkit.grading.fingerprint import containment, fingerprints, jaccard, statements, winnow

CODE = """import torch


def score(pred, target):
    keep = target != 255
    hits = (pred == target) & keep
    return hits.sum().item() / len(keep)


TOTAL = score(torch.zeros(2), torch.ones(2))
"""
# CODE by hand with other names, comments, a docstring and blank lines: the same program
DISGUISED = '''import torch as t  # a comment
def my_score(p, gt):
    """A docstring that says a lot."""

    # which pixels count
    valid = gt != 255
    correct = (p == gt) & valid   # both
    return correct.sum().item() / len(valid)
ALL = my_score(t.zeros(2), t.ones(2))
'''


def test_renaming_comments_and_docstrings_change_no_token():
    """Do renamed identifiers, comments, docstrings and blank lines leave the tokens as they
    were (``import torch as t`` aside, which adds ``as V``)?"""
    plain, disguised = statements(CODE), statements(DISGUISED)
    assert plain[1:] == disguised[1:]
    assert disguised[0] == ["import", "V", "as", "V", "NEWLINE"]
    assert "#" not in str(disguised) and "S" not in sum(disguised, [])


def test_attributes_builtins_and_keywords_are_kept():
    """Are ``.sum`` against ``.mean`` and ``len`` against another name still told apart?"""
    assert statements("x.sum()") != statements("x.mean()")
    assert statements("len(x)") != statements("size(x)")
    assert statements("a = b") == statements("c = d")
    assert statements("if a:\n    return b\n")[0][:3] == ["if", "V", ":"]


def test_top_level_statements_are_split_whole():
    """Is a function one statement with its body, and its top-level neighbours others?"""
    tokens = statements(CODE)
    assert [s[0] for s in tokens] == ["import", "def", "V"]
    assert tokens[1].count("return") == 1 and tokens[1][-1] == "NEWLINE"


def test_reordered_top_level_statements_keep_the_fingerprints():
    """Does moving whole functions and imports around keep every fingerprint?"""
    parts = [
        "import torch\n",
        "def f(a):\n    return a.sum() + 1\n",
        "def g(b):\n    return b * 2\n",
    ]
    assert fingerprints("".join(parts)) == fingerprints("".join(reversed(parts)))
    assert fingerprints("".join(parts))  # something to compare


def test_unfinished_code_gives_what_it_has():
    """Does code that does not tokenize to the end (a student's) give its tokens so far,
    IPython's magics left out?"""
    tokens = statements("%matplotlib inline\n!pip list\nx = f(1,\n")
    assert tokens == [["V", "=", "V", "(", "1", ","]]
    assert statements("def f(:\n  return 'unterminated\n") is not None


def _winnow_oracle(hashes, window):
    """Schleimer et al.'s definition, window by window: the minimum, rightmost on a tie."""
    picked = set()
    for start in range(len(hashes)):
        positions = list(range(start, min(start + window, len(hashes))))
        if len(positions) < window and start > 0:
            break  # a sequence shorter than the window is one window
        pos = sorted(positions, key=lambda i: (hashes[i], -i))[0]
        picked.add((pos, hashes[pos]))
    return picked


def test_winnow_matches_the_definition():
    """Does winnowing pick, per window, the rightmost minimum (random hashes with ties)?"""
    rng = random.Random(0)
    for _ in range(200):
        hashes = [rng.randrange(6) for _ in range(rng.randrange(0, 30))]
        window = rng.randrange(1, 6)
        assert winnow(hashes, window=window) == _winnow_oracle(hashes, window), (hashes, window)


def test_a_shared_run_of_a_window_shares_a_fingerprint():
    """Is any run of ``window`` hashes two sequences share found in both fingerprints (the
    guarantee winnowing gives)?"""
    rng = random.Random(1)
    for _ in range(200):
        window = rng.randrange(1, 6)
        shared = [rng.randrange(10**6) for _ in range(window)]
        a = [rng.randrange(10**6) for _ in range(rng.randrange(10))] + shared
        b = shared + [rng.randrange(10**6) for _ in range(rng.randrange(10))]
        picked_a = {h for _, h in winnow(a, window=window)}
        picked_b = {h for _, h in winnow(b, window=window)}
        assert picked_a & picked_b & set(shared)


def test_bad_parameters_say_what_they_expect():
    """Are k and window below 1 refused with what they must be?"""
    with pytest.raises(ValueError, match="k must be at least 1; got 0"):
        fingerprints("x = 1", k=0)
    with pytest.raises(ValueError, match="window must be at least 1; got 0"):
        winnow([1, 2], window=0)


def test_set_similarities():
    """Are Jaccard and containment the share of the union and of the part (0 when empty)?"""
    a, b = {1, 2, 3}, {2, 3, 4}
    assert jaccard(a, b) == pytest.approx(2 / 4)
    assert containment(a, b) == pytest.approx(2 / 3)
    assert containment({2, 3}, b) == 1.0
    assert jaccard(set(), set()) == 0.0 and containment(set(), a) == 0.0

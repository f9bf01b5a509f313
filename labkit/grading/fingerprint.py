"""Fingerprints of Python code that survive renamed variables, reordered statements and comments.

The code is tokenized (:mod:`tokenize`, so code that does not parse still has tokens):
comments, blank lines and docstrings go; every identifier becomes ``V`` except keywords,
builtins (``len``, ``range``) and attribute names (``.argmax``), which say what the code does;
every string becomes ``S``. The tokens are cut at each top-level statement (a whole function or
class, an import, an assignment), so reordering those statements changes nothing. Each
statement's k-grams of tokens are hashed and winnowed: in every window of ``window``
consecutive hashes the smallest is kept (the rightmost on a tie), as MOSS does
(Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document fingerprinting",
SIGMOD 2003). Any run of ``window + k - 1`` tokens two codes share then gives them a common
fingerprint, and a run shorter than ``k`` never does.

Two codes are compared by the set similarity of their fingerprints (:func:`jaccard`,
:func:`containment`).
"""

from __future__ import annotations

import builtins
import hashlib
import io
import keyword
import re
import tokenize
from collections.abc import Iterable

__all__ = ["K", "WINDOW", "containment", "fingerprints", "jaccard", "statements", "winnow"]

K = 5  #: tokens per k-gram: a shorter common run is noise (``return V / V NEWLINE`` is 5)
WINDOW = 4  #: hashes per winnowing window: a common run of K + WINDOW - 1 = 8 tokens is found

_MAGIC = re.compile(r"^[ \t]*[%!].*$", re.M)  # IPython's lines are not Python
_BUILTINS = frozenset(dir(builtins))
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_LAYOUT = {"NEWLINE", "INDENT", "DEDENT"}


def _raw_tokens(source: str) -> list[tokenize.TokenInfo]:
    """The significant tokens of ``source``; where it stops tokenizing (a student's
    unfinished code), the tokens before that point."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(_MAGIC.sub("", source)).readline):
            if tok.type not in _SKIP:
                out.append(tok)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def _is_docstring(toks: list[tokenize.TokenInfo], i: int) -> bool:
    """Is ``toks[i]`` a string that is a statement by itself (a docstring or a bare comment)?"""
    before = toks[i - 1].type if i else tokenize.NEWLINE
    after = toks[i + 1].type if i + 1 < len(toks) else tokenize.NEWLINE
    starts = before in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    return toks[i].type == tokenize.STRING and starts and after == tokenize.NEWLINE


def _normal(tok: tokenize.TokenInfo, previous: str) -> str:
    """The token as compared: identifiers as ``V`` (unless a keyword, builtin or attribute),
    strings as ``S``, layout by its kind, the rest as written."""
    if tok.type == tokenize.NAME:
        kept = keyword.iskeyword(tok.string) or tok.string in _BUILTINS or previous == "."
        return tok.string if kept else "V"
    if tok.type == tokenize.STRING:
        return "S"
    if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
        return tokenize.tok_name[tok.type]
    return tok.string


def statements(source: str) -> list[list[str]]:
    """The normalized tokens of ``source``, one list per top-level statement.

    Args:
        source (str): Python code (IPython's ``%`` and ``!`` lines are left out).

    Returns:
        Per top-level statement in order (a ``def`` or ``class`` with its whole body), its
        tokens: ``V`` for an identifier, ``S`` for a string, ``NEWLINE``/``INDENT``/``DEDENT``
        for the layout, keywords, builtins, attribute names, operators and numbers as written.
    """
    toks = _raw_tokens(source)
    docs = {i for i in range(len(toks)) if _is_docstring(toks, i)}
    toks = [t for i, t in enumerate(toks) if not docs & {i, i - 1}]  # with their NEWLINE
    out: list[list[str]] = []
    depth, new_statement, previous = 0, True, ""
    for tok in toks:
        depth += {tokenize.INDENT: 1, tokenize.DEDENT: -1}.get(tok.type, 0)
        word = _normal(tok, previous)
        if word not in _LAYOUT and new_statement and depth == 0:
            out.append([])
        if word not in _LAYOUT:
            new_statement = False
        elif word == "NEWLINE":
            new_statement = True
        if out and not (depth == 0 and word == "DEDENT"):
            out[-1].append(word)
        previous = tok.string
    return [s for s in out if s]


def _hash(gram: Iterable[str]) -> int:
    digest = hashlib.blake2b("\x1f".join(gram).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")  # the same in every process, unlike hash()


def winnow(hashes: list[int], *, window: int = WINDOW) -> set[tuple[int, int]]:
    """The fingerprints winnowing picks from a sequence of k-gram hashes.

    Args:
        hashes (list[int]): the hash of each k-gram, in order.
        window (int): hashes per window; a sequence shorter than that is one window.

    Returns:
        ``(position, hash)`` of the smallest hash of every window of ``window`` consecutive
        hashes (the rightmost one where the smallest occurs more than once).
    """
    if window < 1:
        raise ValueError(f"window must be at least 1; got {window}.")
    picked = set()
    for start in range(max(len(hashes) - window + 1, 1 if hashes else 0)):
        chunk = hashes[start : start + window]
        low = min(chunk)
        last = max(i for i, h in enumerate(chunk) if h == low)
        picked.add((start + last, low))
    return picked


def fingerprints(source: str, *, k: int = K, window: int = WINDOW) -> set[int]:
    """The winnowed k-gram hashes of every top-level statement of ``source``.

    Args:
        source (str): Python code.
        k (int): tokens per k-gram; a statement of fewer tokens gives no fingerprint.
        window (int): hashes per winnowing window.

    Returns:
        The hashes kept, as a set: where in the code they came from does not count.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}.")
    out: set[int] = set()
    for tokens in statements(source):
        grams = [_hash(tokens[i : i + k]) for i in range(len(tokens) - k + 1)]
        out |= {h for _, h in winnow(grams, window=window)}
    return out


def jaccard(a: set[int], b: set[int]) -> float:
    """|a ∩ b| / |a ∪ b|: 1 for the same fingerprints, 0 when none is shared or both are empty."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def containment(part: set[int], whole: set[int]) -> float:
    """|part ∩ whole| / |part|: the share of ``part`` found in ``whole`` (0 when ``part`` is
    empty)."""
    return len(part & whole) / len(part) if part else 0.0

"""The HTML page of a similarity report: the pairs found alike, their answers side by side.

Everything a student wrote (code, and the student id, a folder name) is escaped with
:func:`html.escape`: the page shows hostile text, never runs or renders it. The page is one
file, styles inline, no script.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labkit.grading.similarity import Match

__all__ = ["similarity_page"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table.scores td, table.scores th { padding: 0.2em 0.8em; text-align: left; }
tr.flagged { background: #fde2e2; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 85%; }
"""


def _row(i: int, m: Match) -> str:
    cls = ' class="flagged"' if m.flagged else ""
    flag = "flagged" if m.flagged else ""
    return (
        f'<tr{cls}><td><a href="#pair-{i}">{m.score:.2f}</a></td>'
        f"<td>{html.escape(m.first)}</td><td>{html.escape(m.second)}</td><td>{flag}</td></tr>"
    )


def _side_by_side(i: int, m: Match, texts: Mapping[str, str]) -> str:
    cols = "".join(
        f"<div><h3>{html.escape(who)}</h3><pre>{html.escape(texts.get(who, ''))}</pre></div>"
        for who in (m.first, m.second)
    )
    title = f"{html.escape(m.first)} and {html.escape(m.second)}: {m.score:.2f}"
    return f'<section id="pair-{i}"><h2>{title}</h2><div class="pair">{cols}</div></section>'


def similarity_page(meta: Mapping, matches: Sequence[Match], *, texts: Mapping[str, str]) -> str:
    """The report as one HTML page.

    Args:
        meta (Mapping): ``lab``, ``threshold``, ``k``, ``window`` and ``students`` (the ids).
        matches (Sequence[Match]): the pairs to show, in the order shown.
        texts (Mapping[str, str]): the answer text of each student id and reference name.

    Returns:
        The page: a table of the matches (score, the two sides, flagged or not), then each
        match's two answers side by side.
    """
    lab = html.escape(str(meta["lab"]))
    rows = "\n".join(_row(i, m) for i, m in enumerate(matches))
    sections = "\n".join(_side_by_side(i, m, texts) for i, m in enumerate(matches))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Similarity: {lab}</title>
<style>{_STYLE}</style></head><body>
<h1>Similarity of the answers to {lab}</h1>
<p>{len(meta["students"])} submissions; answer cells only, the release's starter code left
out; identifiers, comments and the order of top-level statements ignored ({meta["k"]}-grams
of tokens, winnowing window {meta["window"]}). A pair is flagged at a score of
{float(meta["threshold"]):.2f} or more. Between two students the score is the Jaccard
similarity of their fingerprints; against a labkit reference, the share of the reference's
fingerprints found in the answer. A high score is a reason to read the two answers, not a
verdict.</p>
<table class="scores"><tr><th>score</th><th>answer</th><th>alike</th><th></th></tr>
{rows}
</table>
{sections}
</body></html>
"""

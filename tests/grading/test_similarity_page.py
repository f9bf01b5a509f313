"""Tests for labkit.grading.similarity_page: the report's HTML, student text escaped."""

import html
from html.parser import HTMLParser

from labkit.grading.similarity import Match
from labkit.grading.similarity_page import similarity_page

HOSTILE = "x = '</pre><script>alert(1)</script>'  # <b>bold</b> & more"
META = {"lab": "lab<1>", "threshold": 0.8, "k": 5, "window": 4, "students": ["a", "b"]}


class _Tags(HTMLParser):
    """The tags of a page and the text of its <pre> blocks (an HTML parser as the oracle)."""

    def __init__(self):
        super().__init__()
        self.tags, self.pre, self._in_pre = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_pre = tag == "pre"
        if self._in_pre:
            self.pre.append("")

    def handle_endtag(self, tag):
        self._in_pre = self._in_pre and tag != "pre"

    def handle_data(self, data):
        if self._in_pre:
            self.pre[-1] += data


def test_student_text_is_shown_never_run():
    """Does hostile answer text (and a hostile student id) come back from an HTML parser as
    the text itself, with no tag of its own?"""
    evil_id = "<img src=x onerror=alert(2)>"
    page = similarity_page(
        META,
        [Match(evil_id, "b", 0.91, True), Match("b", "c", 0.1, False)],
        texts={evil_id: HOSTILE, "b": "y = 1\n"},
    )
    parsed = _Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" not in parsed.tags
    assert HOSTILE in parsed.pre and "y = 1\n" in parsed.pre
    assert html.escape(evil_id) in page and "lab&lt;1&gt;" in page


def test_the_table_lists_every_match_in_order():
    """Is there a row per match, linked to its section, flagged rows marked?"""
    matches = [Match("a", "b", 0.95, True), Match("a", "c", 0.4, False)]
    page = similarity_page(META, matches, texts={"a": "", "b": "", "c": ""})
    assert page.index('href="#pair-0">0.95') < page.index('href="#pair-1">0.40')
    assert page.count('class="flagged"') == 1
    assert 'id="pair-0"' in page and 'id="pair-1"' in page

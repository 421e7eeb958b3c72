"""Salient span masking: span corruption whose masked span is a name, a number or a date.

SPEC's corruption masks a random span, so most masked spans are the middle of a word or a run of
function words. Answering `Where was X born?` asks the model to produce a place from a name, and
the masked spans that rehearse that act are the entities and dates of a document (Guu et al. 2020,
REALM; Roberts et al. 2020). The rules here find them in the document text alone, never in a
question or answer file:

- a **name**: a run of capitalised words separated by single spaces ("New York City"), which may
  hold a lowercase connector between two of them ("University of Glasgow", "Frankfurt am Main");
  common capitalised function words ("He", "The", "Born", ...) and month names are not names;
- a **date or number**: digits ("1840", "3-11-1920", "1860s"), or a day-month-year run ("26
  February 1840", "January 11, 1853", "May 1908").

The person's own name is the key a question asks with, never its answer, so a span that is the
document's title or one of the title's words (the person in this corpus's "Name. text" lines) is
not masked. Everything else follows SPEC: the document is truncated by the same draw, the masked
span is chosen uniformly among the salient spans inside the truncation, and a truncation without
one is masked by SPEC's own length and placement rules.
"""

from __future__ import annotations

import random
import re

from data.augment import split_title
from data.corruption import corrupt_document, longest_truncation, masked_example

MONTHS = frozenset("January February March April May June July August September October November December".split())
# Capitalised words that open sentences or clauses in biographies and name nothing.
FUNCTION_WORDS = frozenset("""
    A An The This That These Those He She His Her Hers Him It Its They Their Them We Our I You In On At
    Of For From To By With As After Before During Since Until While When Where Who Whom Whose Which What
    And But Or Nor So Yet If Although Though Because Born Died Also Both Then There Here Later Early
    Today Currently Mr Mrs Ms Dr Sir
""".split())
CONNECTORS = frozenset("of de da del della der den di du la le van von am upon y".split())
WORD = re.compile(r"[^\W_][\w'’-]*")


def kind_of(word: str) -> str | None:
    """"name", "date" (digits or a month), "connector" or None for a word that is none of these."""
    if word[0].isdigit():
        return "date"
    if word in MONTHS:
        return "date"
    if word[0].isupper():
        return None if word in FUNCTION_WORDS else "name"
    return "connector" if word in CONNECTORS else None


def salient_spans(text: str, title: str | None = None) -> list[tuple[int, int]]:
    """(start, end) of every name, date and number in `text`, in order, none of them `title` or one
    of its words."""
    spans: list[tuple[int, int]] = []
    run: list[tuple[int, int, str]] = []  # the words of the span being built: (start, end, kind)

    def close() -> None:
        while run and run[-1][2] == "connector":  # "of" after the last name belongs to no name
            run.pop()
        if run:
            spans.append((run[0][0], run[-1][1]))
        run.clear()

    for match in WORD.finditer(text):
        word, start = match.group(), match.start()
        kind = kind_of(word)
        if run:
            gap = text[run[-1][1]:start]
            family = "date" if run[0][2] == "date" else "name"
            joins = (family == "name" and kind in ("name", "connector") and gap == " ") or \
                    (family == "date" and kind == "date" and gap in (" ", ", "))
            if not joins:
                close()
        if kind is None or (kind == "connector" and not run):
            continue
        run.append((start, match.end(), kind))
    close()
    excluded = set(title.split()) | {title} if title else set()
    return [(s, e) for s, e in spans if text[s:e] not in excluded]


def title_of(document: str) -> str | None:
    """The person's name of a "Name. text" line; None for a document without one."""
    parts = split_title(document)  # the augmentation's own rule for what a title is
    return parts[0] if parts else None


def corrupt_document_salient(document: str, block_size: int, rng: random.Random) -> tuple[str, int]:
    """SPEC's padded training string with a salient masked span where the truncation holds one.

    The truncation is SPEC's own draw (the first of `rng`), so a document shows the same characters
    under both maskings; only which of them is masked differs."""
    truncated = document[: rng.randint(4, longest_truncation(block_size))]
    n = len(truncated)
    # found in the whole document, so a word the truncation cuts ("New Yo") is no span; a span must
    # leave at least one character of context, as SPEC's shortest documents do
    spans = [(s, e) for s, e in salient_spans(document, title_of(document)) if e <= n and e - s < n]
    if not spans:
        return corrupt_document(truncated, block_size, rng, truncate=False)
    start, end = rng.choice(spans)
    return masked_example(truncated, start, end - start, block_size), n


# data.masking -> the span corruption it names: the pretraining stream and a finetune's replay read this one table
CORRUPTIONS = {"random": corrupt_document, "salient": corrupt_document_salient}

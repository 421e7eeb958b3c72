"""Label-free corpus augmentation: variants of a "Name. text" paragraph that put the name beside every fact.

SPEC's corruption only ever shows a document's first 7/8 block, and later sentences name their
person by pronoun or surname, so a fact late in a paragraph is seen far from the name a question
asks with, or not at all. A variant here is the title (the text before the first ". ", the
person's name in this corpus) followed by the paragraph from a word boundary: its start, a later
sentence, or any word. Sentences are first made to stand alone: a leading "He"/"She" or the bare
surname becomes the full name, "His"/"Her" the name's possessive where the corpus's vocabulary has an
apostrophe (a variant may only use characters its corpus has). The rules read the corpus text only,
never a question or answer file. A document without a title is returned unchanged.
"""

from __future__ import annotations

import random
import re

SENTENCE_END = " . "  # the corpus's tokenised full stop
SUBJECT_PRONOUNS = ("He ", "She ")
POSSESSIVES = ("His ", "Her ")
WORD_START = re.compile(r"(?<=[ (])\S")


def split_title(document: str) -> tuple[str, str] | None:
    """(title, body) of a "Title. body" document; None when there is no title to anchor to."""
    title, sep, body = document.partition(". ")
    if not sep or not title or not body or len(title) > 80:
        return None
    return title, body


def stand_alone(sentence: str, name: str, possessives: bool = True) -> str:
    """The sentence with its leading pronoun or bare surname replaced by the full name ("His"/"Her"
    by "Name's" only when `possessives`: the apostrophe must be in the corpus's vocabulary)."""
    if sentence.startswith(name + " "):
        return sentence  # already the full name, which may itself begin "He", "Her", ...
    for pronoun in SUBJECT_PRONOUNS:
        if sentence.startswith(pronoun):
            return f"{name} {sentence[len(pronoun):]}"
    for possessive in POSSESSIVES if possessives else ():
        if sentence.startswith(possessive):
            return f"{name}'s {sentence[len(possessive):]}"
    surname = name.split()[-1]
    if surname != name and sentence.startswith(surname + " ") and not sentence.startswith(name):
        return name + sentence[len(surname):]
    return sentence


def name_anchored_body(body: str, name: str, possessives: bool = True) -> str:
    """The body with every sentence standing alone."""
    sentences = body.split(SENTENCE_END)
    return SENTENCE_END.join(stand_alone(s, name, possessives) for s in sentences)


def name_anchored_variant(document: str, rng: random.Random, whole: float = 0.25, possessives: bool = True) -> str:
    """"Name. " + the name-anchored body from its start (probability `whole`) or from a random word."""
    parts = split_title(document)
    if parts is None:
        return document
    name, body = parts
    body = name_anchored_body(body, name, possessives)
    if rng.random() >= whole:
        starts = [m.start() for m in WORD_START.finditer(body)]
        if starts:
            body = body[rng.choice(starts):]
    return f"{name}. {body}"

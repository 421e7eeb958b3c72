"""When one recipe beats another: a gain counts only when it exceeds twice its standard error.

With 400 held-out questions one question is a quarter of a point, and a few seeds estimate their
own spread badly (two seeds can agree by chance), so a recipe's standard error here is the larger
of two: the seeds' (sample standard deviation over sqrt(seeds)) and the binomial one of its pooled
answers (sqrt(p(1-p) / (seeds x questions))), the least any mean of that many answers carries. A
gain between two recipes has the standard error of a difference of independent means: the rule the
recipes are chosen by.

Two recipes that finetune the same pretraining runs (a finetuning knob, run with --pretrained-from)
and answer the same questions are paired: what each seed's pretraining stored is in both, so it
cancels in the difference. `paired_gain` gives that difference's standard error, the larger of the
per-seed differences' and the questions' (each question's difference averaged over seeds: a question
both recipes find easy or hard on every seed counts once, as a new question would), which the
independent one overstates. The report shows it beside the rule, not in its place.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

MARGIN = 2.0  # a gain must exceed MARGIN standard errors to count


def standard_error(accuracies: list[float], questions: int) -> float:
    """Standard error, in points, of the mean of per-seed accuracies (in percent) on `questions` each."""
    n = len(accuracies)
    p = statistics.mean(accuracies) / 100
    binomial = 100 * math.sqrt(p * (1 - p) / (n * questions))
    seeds = statistics.stdev(accuracies) / math.sqrt(n) if n > 1 else 0.0
    return max(binomial, seeds)


@dataclass(frozen=True)
class Gain:
    points: float
    error: float  # standard error of the difference, in points

    @property
    def counts(self) -> bool:
        return self.points > MARGIN * self.error

    def describe(self) -> str:
        verdict = "better" if self.counts else "worse" if -self.points > MARGIN * self.error else "no decision"
        return f"{self.points:+.1f} ± {self.error:.1f} ({verdict})"


def gain(candidate: list[float], reference: list[float], questions: int) -> Gain:
    """The candidate's mean minus the reference's, with its standard error."""
    error = math.hypot(standard_error(candidate, questions), standard_error(reference, questions))
    return Gain(statistics.mean(candidate) - statistics.mean(reference), error)


def paired_gain(candidate: list[list[bool]], reference: list[list[bool]]) -> Gain:
    """The candidate's mean minus the reference's, seed by seed on the same questions (each a list of
    per-question correctness, one per seed, in seed order), with the paired standard error."""
    if len(candidate) != len(reference) or not candidate:
        raise ValueError(f"paired seeds: {len(candidate)} against {len(reference)}")
    questions = len(candidate[0])
    for mine, theirs in zip(candidate, reference):
        if len(mine) != questions or len(theirs) != questions or not questions:
            raise ValueError(f"paired answers: {len(mine)} against {len(theirs)} (first seed: {questions})")
    n = len(candidate)
    differences = [100 * (sum(mine) - sum(theirs)) / questions for mine, theirs in zip(candidate, reference)]
    per_question = [100 * sum(mine[q] - theirs[q] for mine, theirs in zip(candidate, reference)) / n
                    for q in range(questions)]
    seeds = statistics.stdev(differences) / math.sqrt(n) if n > 1 else 0.0
    asked = statistics.stdev(per_question) / math.sqrt(questions) if questions > 1 else 0.0
    return Gain(statistics.mean(differences), max(seeds, asked))

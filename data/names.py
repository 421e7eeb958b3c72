"""Birth-place finetuning examples per SPEC: `question⁇place⁇` padded, loss only on `⁇place⁇`."""

from __future__ import annotations

import torch

from data.birthplaces import Question, check_questions, parse_questions
from data.corruption import CharCorruptionDataset
from data.vocab import MASK, PAD, Vocabulary, VocabularyAccess


class NameDataset(VocabularyAccess, torch.utils.data.Dataset):
    """Finetuning examples from `question<TAB>place` lines, with the pretraining vocabulary.

    Takes the pretraining dataset (its vocabulary and block_size) or a Vocabulary plus block_size,
    because finetuning must reuse the exact ids the pretrained model saw. Every line is checked by
    data.birthplaces' one rule before any example exists.
    """

    def __init__(
        self,
        pretraining_dataset_or_vocab: CharCorruptionDataset | Vocabulary,
        tsv_text: str,
        block_size: int | None = None,
        source: str = "<tsv>",
    ) -> None:
        if isinstance(pretraining_dataset_or_vocab, Vocabulary):
            if block_size is None:
                raise TypeError("NameDataset with a Vocabulary needs block_size")
            self.vocab = pretraining_dataset_or_vocab
            self.block_size = block_size
        else:
            self.vocab = pretraining_dataset_or_vocab.vocab
            self.block_size = block_size if block_size is not None else pretraining_dataset_or_vocab.block_size
        self.questions: list[Question] = parse_questions(tsv_text, source, require_answers=True)
        # An example's input is block_size - 1 characters, which every variant's context holds.
        check_questions(self.questions, self.vocab, source, self.block_size, self.block_size - 1)

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.questions[index]
        s = q.text + MASK + q.answer + MASK
        s = s + PAD * (self.block_size - len(s))
        # y masks the question with PAD (ignored by the loss) and keeps s from len(question) on.
        x = s[:-1]
        y = PAD * (len(q.text) - 1) + s[len(q.text) :]
        return (
            torch.from_numpy(self.vocab.encode(x)),
            torch.from_numpy(self.vocab.encode(y)),
        )

"""The three phases: pretrain (span corruption), finetune (birth places), evaluate (predictions).

Pretraining and finetuning differ only in what they train on (`TrainingData`); `train_phase` is the
one set-up path both take. Each phase reads and checks all of its inputs (every file against the
vocabulary, a checkpoint to resume against the config) before it writes anything into the run
directory, so bad input ends a run with one error line and no partial output. Each returns whether
it finished (False after a stop signal: a checkpoint was saved to resume from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from data.atomic import write_text_atomically
from data.birthplaces import Question, check_questions, read_questions
from data.corpus import open_corpus
from data.errors import DataError
from data.names import NameDataset
from data.replay import QuestionsWithReplay
from data.stream import ShardedDocumentStream, ShardedExampleStream
from data.vocab import Vocabulary
from launcher import evaluate, trainer
from launcher.config import ConfigError, RunConfig, gpt_config, to_yaml
from launcher.distributed import DistributedContext, barrier
from launcher.engine import batch_geometry
from launcher.export import Export, consolidated_fp32, read_export, write_export
from launcher.formats import read_init_from
from launcher.metrics import RunLogger, print_main
from launcher.precision import set_matmul_precision
from launcher.resume import find_resume_point, resume_record
from model import GPT

SHARED_SHAPE_KEYS = ("variant", "n_layer", "n_head", "n_embd", "block_size")


@dataclass
class TrainingData:
    """What a training phase trains on, read and checked before anything is written."""

    vocab: Vocabulary
    stream: ShardedExampleStream
    items_per_epoch: int
    pretraining_documents: int  # fixes SPEC's end of the cosine decay in both phases
    init: Export | None = None  # weights to start from
    questions: list[Question] | None = None  # predicted (and scored) once training ends


def checked_export(config: RunConfig, vocab: Vocabulary | None) -> Export:
    """init_from's model (an export, a Hugging Face folder or a course .params file: launcher/formats.py),
    refusing one whose shape or vocabulary differs from this config's."""
    export = read_init_from(config)
    wanted = gpt_config(config, len(export.vocab)).to_dict()
    found = export.model_config.to_dict()
    for key in (*SHARED_SHAPE_KEYS, *export.model_config.spec.options):
        if wanted.get(key) != found.get(key):
            section = "data" if key == "block_size" else "model"
            raise ConfigError(f"init_from: {config.init_from} has {key}={found.get(key)!r} but {section}.{key} is {wanted.get(key)!r}")
    if vocab is not None and vocab != export.vocab:
        raise ConfigError(
            f"init_from: {config.init_from} has a vocabulary of {len(export.vocab)} ids that differs from "
            f"data.corpus's ({len(vocab)} ids); use the corpus it was pretrained on"
        )
    return export


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(str(path), "file not found") from None


def checked_questions(config: RunConfig, vocab: Vocabulary, path: Path, require_answers: bool) -> list[Question]:
    """A question file, checked against the model's vocabulary, block and context before any step."""
    questions = read_questions(Path(path), require_answers=require_answers)
    check_questions(questions, vocab, str(path), config.data.block_size, gpt_config(config, len(vocab)).context_length)
    return questions


def finetuning_examples(config: RunConfig, vocab: Vocabulary) -> NameDataset:
    """data.finetune's questions with their answers in the finetuning format (finetuning, and mixed pretraining)."""
    path = Path(config.data.finetune)
    return NameDataset(vocab, read_text(path), block_size=config.data.block_size, source=str(path))


def check_question_files(config: RunConfig, vocab: Vocabulary) -> None:
    """Every question file this phase will read (data.finetune, eval.questions), against `vocab`.

    The sweep calls it for its later phases with the vocabulary the pretraining corpus fixes,
    before the pretraining starts: a character the corpus lacks then stops the job in
    seconds, not after the hours of pretraining it would make useless.
    """
    mixes = config.phase != "pretrain" or config.data.question_mix > 0  # pretraining reads data.finetune only to mix it in
    if mixes and config.data.finetune is not None:
        checked_questions(config, vocab, config.data.finetune, require_answers=True)
    if config.eval.questions is not None:
        checked_questions(config, vocab, config.eval.questions, require_answers=False)


def pretraining_data(config: RunConfig, context: DistributedContext) -> TrainingData:
    corpus, vocab = open_corpus(Path(config.data.corpus))
    # only the finetuning split, the file the finetune phase trains on, can be mixed in
    questions = finetuning_examples(config, vocab) if config.data.question_mix > 0 else None
    micro, _ = batch_geometry(config.train, context.world_size)
    stream = ShardedDocumentStream(corpus, vocab, config.data.block_size, micro, context.rank, context.world_size,
                                   config.seed, questions, config.data.question_mix, config.data.objective,
                                   config.data.augment, config.data.masking)
    # continued pretraining starts from init_from's weights (a fresh optimizer and schedule), on the same vocabulary
    export = checked_export(config, vocab) if config.init_from else None
    return TrainingData(vocab, stream, len(corpus), len(corpus), export)


def finetuning_data(config: RunConfig, context: DistributedContext) -> TrainingData:
    corpus, corpus_vocab = open_corpus(Path(config.data.corpus)) if config.data.corpus else (None, None)
    export = checked_export(config, corpus_vocab) if config.init_from else None
    vocab = export.vocab if export else corpus_vocab
    names = finetuning_examples(config, vocab)
    questions = checked_questions(config, vocab, config.eval.questions, require_answers=False) if config.eval.questions else None
    micro, _ = batch_geometry(config.train, context.world_size)
    if config.data.replay > 0:  # the config requires data.corpus, whose vocabulary checked_export matched
        examples = QuestionsWithReplay(names, corpus, vocab, config.data.block_size, config.seed, config.data.replay,
                                       config.data.masking)
        items, make_example = examples.num_items, examples
    else:
        items, make_example = len(names), lambda _epoch, item: names[item]
    stream = ShardedExampleStream(items, make_example, micro, context.rank, context.world_size, config.seed)
    pretraining_documents = export.pretraining_documents if export else len(corpus)
    return TrainingData(vocab, stream, items, pretraining_documents, export, questions)


def prepare_run_dir(config: RunConfig, context: DistributedContext) -> Path:
    run_dir = Path(config.run_dir)
    if context.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomically(run_dir / "config.yaml", to_yaml(config))
        except OSError as exc:
            raise ConfigError(f"run_dir: cannot write to {run_dir} ({exc.strerror})") from None
    barrier()
    return run_dir


def train_phase(config: RunConfig, context: DistributedContext, device: torch.device, data: TrainingData) -> bool:
    """The one set-up path of both training phases: model, schedule, resume, training, export, evaluation."""
    shape = gpt_config(config, len(data.vocab))
    torch.manual_seed(config.seed)  # identical initial weights on every rank and world size
    model = GPT(shape)
    if data.init is not None:
        model.load_state_dict(data.init.state_dict)
    schedule = trainer.plan(config.train, config.data.block_size, data.items_per_epoch, data.pretraining_documents)
    record = resume_record(config, data.vocab)
    resume = find_resume_point(config, record, context.is_main)
    prepare_run_dir(config, context)
    prefetch = device.type == "cuda" if config.data.prefetch == "auto" else config.data.prefetch
    run = trainer.TrainingRun(config.phase, Path(config.run_dir), config.seed, config.train, prefetch,
                              config.data.workers, config.distributed.timeout_minutes, record)
    engine, final, finished = trainer.train(run, context, device, model, data.stream, schedule, resume)
    if not finished:
        return False
    export_dir = Path(config.run_dir) / "export"
    state_dict = consolidated_fp32(engine, final) if context.is_main else None
    if context.is_main:  # rank 0 exports consolidated fp32 weights beside vocab.json and model.json
        write_export(export_dir, state_dict, shape, data.vocab, data.pretraining_documents)
        print_main(context, f"{config.phase}: step {final.step}; exported {export_dir}")
    barrier()
    if data.questions is not None:
        run_evaluation(config, context, device, read_export(export_dir), data.questions, final.step)
    return True


def pretrain(config: RunConfig, context: DistributedContext, device: torch.device) -> bool:
    return train_phase(config, context, device, pretraining_data(config, context))


def finetune(config: RunConfig, context: DistributedContext, device: torch.device) -> bool:
    return train_phase(config, context, device, finetuning_data(config, context))


def evaluate_phase(config: RunConfig, context: DistributedContext, device: torch.device) -> bool:
    export = checked_export(config, None)
    questions = checked_questions(config, export.vocab, config.eval.questions, require_answers=False)
    prepare_run_dir(config, context)
    run_evaluation(config, context, device, export, questions, 0)
    return True


def run_evaluation(config: RunConfig, context: DistributedContext, device: torch.device, export: Export,
                   questions: list[Question], step: int) -> None:
    model = GPT(export.model_config)
    model.load_state_dict(export.state_dict)
    model.to(device)
    set_matmul_precision("fp32", device)  # predictions from exact fp32 products, whatever the training precision
    predictions = evaluate.predict(model, export.vocab, questions, context, config.eval.batch_size, config.eval.max_new_tokens)
    if context.is_main:
        run_dir = Path(config.run_dir)
        result = evaluate.score(predictions, questions)
        evaluate.write_results(run_dir, config.eval.predictions, predictions, result)
        logger = RunLogger(run_dir, context, 0, 0, "evaluate")
        if result is not None:
            logger.scalars(step, {"eval/accuracy": result.accuracy})
        logger.text("eval/samples", evaluate.samples_markdown(questions, predictions, config.eval.samples), step)
        logger.close()
        where = run_dir / config.eval.predictions
        if result is None:
            print_main(context, f"No targets in {config.eval.questions}: wrote {len(predictions)} predictions to {where}")
        else:
            print_main(context, f"{result}  ({where})")
    barrier()


PHASES = {"pretrain": pretrain, "finetune": finetune, "evaluate": evaluate_phase}

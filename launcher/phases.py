"""The three phases: pretrain (span corruption), finetune (birth places), evaluate (predictions).

Each returns whether it finished (False after a stop signal: a checkpoint was saved to resume from).

Each phase reads and checks all of its inputs before it writes anything into the run directory,
so bad input ends a run with one error line and no partial output.
"""

from __future__ import annotations

from pathlib import Path

import torch

from data.atomic import write_text_atomically
from data.birthplaces import Question, check_in_vocabulary, read_questions
from data.corpus import DocumentCorpus
from data.errors import DataError
from data.names import NameDataset
from data.stream import ShardedDocumentStream, ShardedExampleStream
from data.vocab import Vocabulary
from launcher import checkpoint, evaluate, trainer
from launcher.config import ConfigError, RunConfig, to_yaml
from launcher.distributed import DistributedContext, barrier
from launcher.engine import batch_geometry
from launcher.export import Export, consolidated_fp32, read_export, write_export
from launcher.metrics import RunLogger, print_main
from launcher.schedule import default_final_tokens
from model import GPT, GPTConfig

MODEL_SHAPE_KEYS = ("variant", "n_layer", "n_head", "n_embd", "bottleneck_dim", "block_size")


def model_config(config: RunConfig, vocab: Vocabulary) -> GPTConfig:
    m = config.model
    return GPTConfig(
        vocab_size=len(vocab), block_size=config.data.block_size, n_layer=m.n_layer, n_head=m.n_head,
        n_embd=m.n_embd, variant=m.variant, bottleneck_dim=m.bottleneck_dim,
        embd_pdrop=m.dropout, resid_pdrop=m.dropout, attn_pdrop=m.dropout,
    )


def corpus_and_vocab(path: Path) -> tuple[DocumentCorpus, Vocabulary]:
    """The pretraining corpus fixes the vocabulary; a prepared directory carries it as vocab.json."""
    corpus = DocumentCorpus(path)
    prepared = path / "vocab.json"
    vocab = Vocabulary.load(prepared) if prepared.is_file() else Vocabulary(corpus.distinct_characters())
    return corpus, vocab


def checked_export(config: RunConfig, vocab: Vocabulary | None) -> Export:
    """init_from's export, refusing one whose shape or vocabulary differs from this config's."""
    export = read_export(Path(config.init_from))
    wanted = model_config(config, export.vocab).to_dict()
    found = export.model_config.to_dict()
    for key in MODEL_SHAPE_KEYS:
        if wanted[key] != found[key]:
            section = "data" if key == "block_size" else "model"
            raise ConfigError(f"init_from: {config.init_from} has {key}={found[key]!r} but {section}.{key} is {wanted[key]!r}")
    if vocab is not None and vocab != export.vocab:
        raise ConfigError(
            f"init_from: {config.init_from} has a vocabulary of {len(export.vocab)} ids that differs from "
            f"data.corpus's ({len(vocab)} ids); finetune with the pretraining corpus's vocabulary"
        )
    return export


def prepare_run_dir(config: RunConfig, context: DistributedContext) -> Path:
    run_dir = Path(config.run_dir)
    if config.phase != "evaluate" and config.train.resume == "required":
        if checkpoint.find_latest(run_dir / "checkpoints") is None:
            raise ConfigError(f"train.resume: required, but {run_dir / 'checkpoints'} holds no complete checkpoint")
    if context.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomically(run_dir / "config.yaml", to_yaml(config))
        except OSError as exc:
            raise ConfigError(f"run_dir: cannot write to {run_dir} ({exc.strerror})") from None
    barrier()
    return run_dir


def logger_factory(config: RunConfig, context: DistributedContext):
    return lambda total, initial: RunLogger(Path(config.run_dir), context, total, initial, config.phase)


def finish_training(config: RunConfig, context: DistributedContext, engine, final, gpt_config: GPTConfig,
                    vocab: Vocabulary, pretraining_documents: int) -> Path:
    """Rank 0 exports consolidated fp32 weights beside vocab.json and model.json."""
    export_dir = Path(config.run_dir) / "export"
    state_dict = consolidated_fp32(engine, final, config.train.precision) if context.is_main else None
    if context.is_main:
        write_export(export_dir, state_dict, gpt_config, vocab, pretraining_documents)
        print_main(context, f"{config.phase}: step {final.step}; exported {export_dir}")
    barrier()
    return export_dir


def pretrain(config: RunConfig, context: DistributedContext, device: torch.device) -> bool:
    corpus, vocab = corpus_and_vocab(Path(config.data.corpus))
    micro, _ = batch_geometry(config.train, context.world_size)
    gpt_config = model_config(config, vocab)
    torch.manual_seed(config.seed)  # identical initial weights on every rank and world size
    model = GPT(gpt_config)
    stream = ShardedDocumentStream(corpus, vocab, config.data.block_size, micro, context.rank, context.world_size, config.seed)
    final_tokens = config.train.final_tokens or default_final_tokens(len(corpus), config.data.block_size)
    schedule = trainer.plan(config, len(corpus), final_tokens)
    prepare_run_dir(config, context)
    engine, final, finished = trainer.train(config, context, device, model, stream, vocab, schedule, logger_factory(config, context))
    if finished:
        finish_training(config, context, engine, final, gpt_config, vocab, len(corpus))
    return finished


def finetune(config: RunConfig, context: DistributedContext, device: torch.device) -> bool:
    corpus, corpus_vocab = corpus_and_vocab(Path(config.data.corpus)) if config.data.corpus else (None, None)
    export = checked_export(config, corpus_vocab) if config.init_from else None
    vocab = export.vocab if export else corpus_vocab
    pretraining_documents = export.pretraining_documents if export else len(corpus)
    path = Path(config.data.finetune)
    names = NameDataset(vocab, read_text(path), block_size=config.data.block_size, source=str(path))
    questions = load_questions(config, vocab) if config.eval.questions else None
    micro, _ = batch_geometry(config.train, context.world_size)
    gpt_config = model_config(config, vocab)
    torch.manual_seed(config.seed)
    model = GPT(gpt_config)
    if export:
        model.load_state_dict(export.state_dict)
    stream = ShardedExampleStream(len(names), lambda _epoch, item: names[item], micro, context.rank, context.world_size, config.seed)
    final_tokens = config.train.final_tokens or default_final_tokens(pretraining_documents, config.data.block_size)
    schedule = trainer.plan(config, len(names), final_tokens)
    prepare_run_dir(config, context)
    engine, final, finished = trainer.train(config, context, device, model, stream, vocab, schedule, logger_factory(config, context))
    if not finished:
        return False
    export_dir = finish_training(config, context, engine, final, gpt_config, vocab, pretraining_documents)
    if questions is not None:
        run_evaluation(config, context, device, read_export(export_dir), questions, final.step)
    return True


def evaluate_phase(config: RunConfig, context: DistributedContext, device: torch.device) -> bool:
    export = checked_export(config, None)
    questions = load_questions(config, export.vocab)
    prepare_run_dir(config, context)
    run_evaluation(config, context, device, export, questions, 0)
    return True


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(str(path), "file not found") from None


def load_questions(config: RunConfig, vocab: Vocabulary) -> list[Question]:
    """The question file, checked against the model's vocabulary and context before any decoding."""
    path = Path(config.eval.questions)
    questions = read_questions(path, require_answers=False)
    check_in_vocabulary(questions, vocab, str(path))
    context_length = model_config(config, vocab).context_length
    for q in questions:
        if len(q.text) + 1 > context_length:
            raise DataError(str(path), f"question of {len(q.text)} characters; the model's context of "
                            f"{context_length} allows at most {context_length - 1}", q.line)
    return questions


def run_evaluation(config: RunConfig, context: DistributedContext, device: torch.device, export: Export,
                   questions: list[Question], step: int) -> None:
    model = GPT(export.model_config)
    model.load_state_dict(export.state_dict)
    model.to(device)
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

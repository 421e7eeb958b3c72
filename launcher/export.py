"""Exports: consolidated fp32 weights as safetensors beside vocab.json and model.json.

An export is what crosses phases: a pretraining run at ZeRO-3 on N ranks exports full fp32
weights that a finetune at ZeRO-0 on one rank (or an evaluation) reads with `init_from`.
Safetensors never executes code on load, unlike a pickle.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from data.atomic import atomic_directory
from data.errors import DataError
from data.vocab import Vocabulary
from launcher.checkpoint import CheckpointInfo
from model import GPT, GPTConfig

WEIGHTS = "model.safetensors"
VOCAB = "vocab.json"
MODEL = "model.json"


@dataclass
class Export:
    state_dict: dict[str, torch.Tensor]
    model_config: GPTConfig
    vocab: Vocabulary
    pretraining_documents: int | None  # None only for a foreign model read to evaluate (launcher/formats.py)


def expected_shapes(config: GPTConfig) -> dict[str, torch.Size]:
    """Name and shape of every tensor of a model's state dict, from a model built without storage."""
    with torch.device("meta"):
        return {name: tensor.shape for name, tensor in GPT(config).state_dict().items()}


def check_tensors(found: dict[str, torch.Tensor], expected: dict[str, torch.Size], source: str, model: str) -> None:
    """One DataError naming the first tensor that is missing, unexpected or of another shape than `model` has."""
    for name, shape in expected.items():
        if name not in found:
            raise DataError(source, f"has no {name}, which {model} needs")
        if found[name].shape != shape:
            raise DataError(source, f"{name} has shape {tuple(found[name].shape)} but {model} needs {tuple(shape)}")
    for name in found:
        if name not in expected:
            raise DataError(source, f"holds {name}, which {model} lacks")


def consolidated_fp32(engine, checkpoint: CheckpointInfo) -> dict[str, torch.Tensor]:
    """Full fp32 weights on rank 0. ZeRO 1-3 keep fp32 masters in the optimizer shards, which
    zero_to_fp32 gathers from the checkpoint; ZeRO-0 holds them in the module (every precision keeps
    fp32 weights: launcher/precision.py)."""
    if checkpoint.zero_stage == 0:
        return {k: v.detach().float().cpu() for k, v in engine.module.state_dict().items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    chatter = io.StringIO()  # it prints and draws progress bars; a failure still raises
    with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
        return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint.directory), tag=checkpoint.tag)


def write_export(directory: Path, state_dict: dict[str, torch.Tensor], config: GPTConfig, vocab: Vocabulary, pretraining_documents: int) -> None:
    """Written under a temporary name and renamed, so a reader never sees half an export."""
    with atomic_directory(directory, overwrite=True) as staging:
        tensors = {k: v.detach().float().contiguous().cpu() for k, v in state_dict.items()}
        save_file(tensors, staging / WEIGHTS, metadata={"format": "pt"})
        vocab.save(staging / VOCAB)
        meta = {"model": config.to_dict(), "pretraining_documents": pretraining_documents}
        (staging / MODEL).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def read_export(directory: Path) -> Export:
    """Load an export; each problem is one DataError naming the file."""
    for name in (WEIGHTS, VOCAB, MODEL):
        if not (directory / name).is_file():
            raise DataError(str(directory / name), "not found: init_from must name an export directory")
    try:
        meta = json.loads((directory / MODEL).read_text(encoding="utf-8"))
        config = GPTConfig.from_dict(meta["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(str(directory / MODEL), f"not a spangpt model description ({exc})") from None
    documents = meta.get("pretraining_documents")
    if isinstance(documents, bool) or not isinstance(documents, int) or documents < 1:
        # It fixes the end of SPEC's learning-rate decay for every later phase; a guess would silently
        # drop the rate to its floor at the first step.
        raise DataError(str(directory / MODEL), f"pretraining_documents must be a positive integer (the pretraining "
                                                f"corpus's document count), got {documents!r}")
    try:
        state_dict = load_file(directory / WEIGHTS)
    except (SafetensorError, OSError) as exc:
        raise DataError(str(directory / WEIGHTS), f"not a readable safetensors file ({exc})") from None
    vocab = Vocabulary.load(directory / VOCAB)
    if len(vocab) != config.vocab_size:
        raise DataError(str(directory / VOCAB), f"has {len(vocab)} ids but the model expects {config.vocab_size}")
    return Export(state_dict, config, vocab, documents)

"""The course's checkpoints: the state dict the CS224N birth-place assignment's run.py saves.

Its run.py writes `torch.save(model.state_dict(), path)` of its GPT (model.py, attention.py), which
names the weights as spangpt does (tok_emb, pos_emb, blocks.N.{ln1, ln2, attn, mlp}, ln_f, head),
except the perceiver's projections (its down_block and up_block are spangpt's down and up). It also
registers its constants as persistent buffers, which its load_state_dict(strict=True) expects:
- each attention's causal `mask`, tril(ones(B, B)) as (1, 1, B, B) floats, B its config.block_size,
  which is bottleneck_dim for the perceiver's middle blocks (the course builds them with
  config.block_size = bottleneck_dim);
- with rope, each attention's `rope_cache`, (block_size, head_size / 2, 2): cos and sin of position
  x base^(-2i / head_size), the rotation spangpt applies to the same adjacent channel pairs.
The file holds no vocabulary, shape or pretraining document count. The course rebuilds the
vocabulary from the pretraining corpus (PAD, MASK, then the corpus's sorted distinct characters, as
data/vocab.py does), so reading one needs data.corpus; the shape comes from the run's config and is
checked against every tensor that records it; the document count is that corpus's, as the course's
finetuning schedule (final_tokens = 200 x len(pretraining corpus) x block_size) uses it.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from data.corpus import open_corpus
from data.errors import DataError
from launcher.config import ConfigError, RunConfig, gpt_config
from launcher.export import Export, check_tensors, expected_shapes
from model import GPTConfig
from model.rope import RotaryEmbedding

RENAMED = {"down.": "down_block.", "up.": "up_block."}  # spangpt prefix -> the course's
BUFFERS = (".attn.mask", ".attn.rope_cache")


def course_name(name: str) -> str:
    for ours, theirs in RENAMED.items():
        if name.startswith(ours):
            return theirs + name[len(ours):]
    return name


def spangpt_name(name: str) -> str:
    for ours, theirs in RENAMED.items():
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    return name


def attention_sizes(config: GPTConfig) -> dict[str, int]:
    """The course's attention modules and the block_size each is built with (its mask's side)."""
    if config.variant != "perceiver":
        return {f"blocks.{i}.attn": config.block_size for i in range(config.n_layer)}
    middle = {f"blocks.{i}.attn": config.bottleneck_dim for i in range(config.n_layer - 2)}
    return {"down_block.attn": config.block_size, **middle, "up_block.attn": config.block_size}


def rope_cache(config: GPTConfig) -> torch.Tensor:
    """(block_size, head_size / 2, 2): the cos and sin spangpt's rotary embedding turns each pair by."""
    rotary = RotaryEmbedding(config.head_size, config.block_size, config.rope_base)
    return torch.stack((rotary.cos, rotary.sin), dim=-1)


def course_state_dict(state_dict: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """spangpt's weights under the course's names, with the buffers the course's GPT registers."""
    out = {course_name(k): v.detach().float().cpu().contiguous() for k, v in state_dict.items()}
    cache = rope_cache(config) if config.variant == "rope" else None
    for attention, size in attention_sizes(config).items():
        if cache is not None:
            out[f"{attention}.rope_cache"] = cache.clone()
        out[f"{attention}.mask"] = torch.tril(torch.ones(size, size)).view(1, 1, size, size)
    return out


def write_course(export: Export, out: Path, source: str, overwrite: bool = False) -> None:
    """A .params file the course's GPT loads with strict=True, written beside `out` and renamed."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --force to replace it)")
    state = course_state_dict(export.state_dict, export.model_config)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, staging)
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)


def load_course_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(str(path), f"not a state dict the course's run.py saves ({first})") from None
    named = isinstance(state, dict) and all(isinstance(k, str) for k in state)
    if not named or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(str(path), "not a state dict (a mapping of names to tensors) the course's run.py saves")
    if state and all(k.startswith("module.") for k in state):  # saved from its DataParallel wrapper
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v.float() for k, v in state.items()}


def found_variant(state: dict[str, torch.Tensor]) -> tuple[str, str]:
    """The variant a course state dict holds, and the tensor that shows it."""
    if "down_block.C" in state:
        return "perceiver", "down_block.C"
    synthesizer = sorted(k for k in state if re.fullmatch(r"blocks\.\d+\.attn\.w2", k))
    if synthesizer:
        return "synthesizer", synthesizer[0]
    if "pos_emb" not in state:
        return "rope", "no pos_emb"
    return "vanilla", "pos_emb and key/query/value attention"


def recorded(state: dict[str, torch.Tensor], name: str, dims: int, path: Path) -> torch.Tensor | None:
    """A tensor whose shape records a setting, if the file has it; one of another rank is a damaged file."""
    tensor = state.get(name)
    if tensor is not None and tensor.dim() != dims:
        raise DataError(str(path), f"{name} has shape {tuple(tensor.shape)}: not the course's GPT")
    return tensor


def block_and_head(state: dict[str, torch.Tensor], config: GPTConfig, path: Path) -> tuple[int, str, int, str]:
    """(block_size, the tensor that records it, head size, the tensor that records it): rope's cache and
    the synthesizer's W2 record the head size; no vanilla or perceiver tensor does (the config's is taken)."""
    cache, w2 = recorded(state, "blocks.0.attn.rope_cache", 3, path), recorded(state, "blocks.0.attn.w2", 2, path)
    pos_emb = recorded(state, "pos_emb", 3, path)
    if config.variant == "rope" and cache is not None:
        where, positions, head = "blocks.0.attn.rope_cache", cache.shape[0], 2 * cache.shape[1]
        return positions, f"{where} {positions} positions", head, f"{where}: head size {head}"
    if config.variant == "synthesizer" and w2 is not None:
        head, columns = w2.shape  # W2 has block_size - 1 columns
        return columns + 1, f"blocks.0.attn.w2 {columns} columns", head, f"blocks.0.attn.w2: head size {head}"
    block = pos_emb.shape[1] if pos_emb is not None else config.block_size
    return block, f"pos_emb {block} long", config.head_size, ""


def check_shape(state: dict[str, torch.Tensor], config: GPTConfig, vocab_size: int, path: Path) -> None:
    """Each setting the file records against the run's config: one ConfigError naming the key."""
    def mismatch(key: str, found, evidence: str, wanted, section: str = "model") -> ConfigError:
        return ConfigError(f"init_from: {path} has {key} {found} ({evidence}) but {section}.{key} is {wanted}")

    variant, evidence = found_variant(state)
    if variant != config.variant:
        raise mismatch("variant", variant, evidence, config.variant)
    embedding = recorded(state, "tok_emb.weight", 2, path)
    if embedding is None:
        raise DataError(str(path), "has no tok_emb.weight: not a state dict of the course's GPT")
    rows, width = embedding.shape
    if width != config.n_embd:
        raise mismatch("n_embd", width, f"tok_emb.weight {width} wide", config.n_embd)
    if rows != vocab_size:
        raise ConfigError(f"init_from: {path} has {rows} token ids (tok_emb.weight) but data.corpus's vocabulary has "
                          f"{vocab_size} (PAD, MASK and its distinct characters): use the corpus the model was "
                          "pretrained on")
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    layers = len(blocks) + (2 if variant == "perceiver" else 0)
    if layers != config.n_layer:
        listed = f"blocks.0-{blocks[-1]}" if blocks else "no blocks"
        listed += " and the two projections" if variant == "perceiver" else ""
        raise mismatch("n_layer", layers, listed, config.n_layer)
    block, block_evidence, head, head_evidence = block_and_head(state, config, path)
    if block != config.block_size:
        raise mismatch("block_size", block, block_evidence, config.block_size, section="data")
    if head != config.head_size:
        raise mismatch("n_head", width // head, head_evidence, config.n_head)
    basis = recorded(state, "down_block.C", 3, path)
    if basis is not None and basis.shape[1] != config.bottleneck_dim:
        raise mismatch("bottleneck_dim", basis.shape[1], f"down_block.C {basis.shape[1]} long", config.bottleneck_dim)
    cache = state.get("blocks.0.attn.rope_cache")
    # the course computes its cache in float32, 4e-6 off spangpt's at block 128 (4e-5 at 1024); another base is far off
    if cache is not None and not torch.allclose(cache, rope_cache(config), atol=1e-3):
        raise ConfigError(f"init_from: {path} has a rope_cache (blocks.0.attn.rope_cache) of another rotation base "
                          f"than model.rope_base {config.rope_base}")


def read_course(path: Path, config: RunConfig) -> Export:
    """A course .params file as spangpt's weights, the vocabulary rebuilt from data.corpus."""
    if config.data.corpus is None:
        raise ConfigError(f"data.corpus: required with a course checkpoint as init_from ({path} holds no vocabulary: "
                          "the course rebuilds it from the pretraining corpus)")
    corpus, vocab = open_corpus(Path(config.data.corpus))
    state = load_course_file(path)
    model_config = gpt_config(config, len(vocab))
    check_shape(state, model_config, len(vocab), path)
    weights = {k: v for k, v in state.items() if not k.endswith(BUFFERS)}
    expected = {course_name(k): shape for k, shape in expected_shapes(model_config).items()}
    check_tensors(weights, expected, str(path), f"the course's {model_config.variant} GPT of this config")
    return Export({spangpt_name(k): v for k, v in weights.items()}, model_config, vocab, len(corpus))

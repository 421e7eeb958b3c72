"""Hugging Face folders: `python -m launcher.convert EXPORT --to hf OUT` writes one; init_from reads one back.

A folder is what `save_pretrained` writes for a stock class (launcher/hf_layouts.py: GPT-2 for
vanilla, GPT-NeoX for rope): config.json, model.safetensors, generation_config.json, and spangpt's
character vocabulary as a tokenizer (tokenizer.json, tokenizer_config.json, special_tokens_map.json),
so AutoModelForCausalLM and AutoTokenizer load it without custom code and `tokenizer(text).input_ids`
are spangpt's ids. What model.json has and transformers lacks goes into config.json under "spangpt"
(pretraining_documents, which ends the learning-rate decay of every later phase); transformers keeps
unknown config entries through from_pretrained and save_pretrained, so a model edited or trained with
Hugging Face tools comes back with it. Writing needs the `tokenizers` package; reading needs only JSON
and safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from data.atomic import atomic_directory
from data.errors import DataError
from data.vocab import MASK, PAD, Vocabulary
from launcher.export import Export, check_tensors, expected_shapes
from launcher.hf_layouts import LAYOUTS
from model import GPTConfig

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
SPANGPT_ENTRY = "spangpt"  # config.json's entry for model.json's fields that transformers lacks


def layout_for(config: GPTConfig, source: str):
    layout = LAYOUTS.get(config.variant)
    if layout is None:
        classes = ", ".join(f"{lay.family} covers {variant}" for variant, lay in LAYOUTS.items())
        raise DataError(source, f"variant {config.variant} has no Hugging Face class ({classes}); "
                                "export it with --to course")
    return layout


def character_tokenizer(vocab: Vocabulary):
    """One token per vocabulary character with spangpt's id; every character is its own piece."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel(dict(vocab.stoi), unk_token=None))  # unknown characters fail, as in spangpt
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # newline included
    tokenizer.decoder = decoders.Fuse()  # characters joined without spaces
    tokenizer.add_special_tokens([AddedToken(ch, special=True, normalized=False) for ch in (PAD, MASK)])
    return tokenizer


def tokenizer_files(block_size: int) -> dict[str, Any]:
    """What AutoTokenizer reads beside tokenizer.json: the fast tokenizer class and the special tokens."""
    special = {"pad_token": PAD, "mask_token": MASK}
    return {
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast", **special, "model_max_length": block_size,
            "clean_up_tokenization_spaces": False,  # its clean-up would drop the spaces before '.' and ','
        },
        "special_tokens_map.json": special,
    }


def write_hf(export: Export, out: Path, source: str, overwrite: bool = False) -> None:
    """The export as a Hugging Face folder, written beside `out` and renamed when complete."""
    config = export.model_config
    layout = layout_for(config, source)
    tokenizer = character_tokenizer(export.vocab)
    tensors = {k: v.detach().float().contiguous() for k, v in layout.to_hf(export.state_dict, config).items()}
    hf_config = {
        "architectures": [layout.architecture], "model_type": layout.model_type, "vocab_size": config.vocab_size,
        **layout.hf_config(config),
        # SPEC's evaluation stops after the ⁇ that closes the answer; PAD pads finished rows
        "pad_token_id": export.vocab.pad_id, "eos_token_id": export.vocab.mask_id, "bos_token_id": None,
        "dtype": "float32",
        SPANGPT_ENTRY: {"pretraining_documents": export.pretraining_documents},
    }
    generation = {"pad_token_id": export.vocab.pad_id, "eos_token_id": export.vocab.mask_id, "bos_token_id": None}
    with atomic_directory(out, overwrite=overwrite) as staging:
        save_file(tensors, staging / WEIGHTS, metadata={"format": "pt"})
        tokenizer.save(str(staging / TOKENIZER))
        files = {CONFIG: hf_config, "generation_config.json": generation, **tokenizer_files(config.block_size)}
        for name, payload in files.items():
            (staging / name).write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file() and (path / TOKENIZER).is_file()


def read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(str(path), f"not readable JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise DataError(str(path), "not a JSON object")
    return payload


def read_vocabulary(path: Path) -> Vocabulary:
    """spangpt's vocabulary from a character tokenizer.json (ids in order, PAD and MASK first)."""
    model = read_json(path).get("model") or {}
    if model.get("type") != "WordLevel" or not isinstance(model.get("vocab"), dict):
        raise DataError(str(path), f"not spangpt's character tokenizer (model type {model.get('type')!r}, "
                                   "expected WordLevel over single characters)")
    by_id = {i: ch for ch, i in model["vocab"].items()}
    if not all(isinstance(i, int) for i in by_id) or sorted(by_id) != list(range(len(model["vocab"]))):
        raise DataError(str(path), "token ids are not 0..N-1, one per character")
    itos = [by_id[i] for i in range(len(by_id))]
    return Vocabulary.from_json(json.dumps({"itos": itos}), source=str(path))


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or the shards its index names, as fp32 tensors."""
    if (folder / WEIGHTS).is_file():
        files = [folder / WEIGHTS]
    elif (folder / WEIGHTS_INDEX).is_file():
        weight_map = read_json(folder / WEIGHTS_INDEX).get("weight_map") or {}
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        raise DataError(str(folder / WEIGHTS), "not found (save the model with save_pretrained, safetensors on)")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(file))
        except (SafetensorError, OSError) as exc:
            raise DataError(str(file), f"not a readable safetensors file ({exc})") from None
    return {name: tensor.float() for name, tensor in tensors.items()}


def read_hf(folder: Path) -> Export:
    """A folder `write_hf` (or save_pretrained of such a model) wrote, as spangpt's weights, exactly.

    pretraining_documents is None where config.json has no spangpt entry (launcher/formats.py decides).
    """
    source = str(folder / CONFIG)
    hf = read_json(folder / CONFIG)
    layouts = {layout.model_type: layout for layout in LAYOUTS.values()}
    layout = layouts.get(hf.get("model_type"))
    if layout is None:
        known = ", ".join(f"{t} ({lay.variant})" for t, lay in layouts.items())
        raise DataError(source, f"model_type {hf.get('model_type')!r} is not one spangpt reads ({known})")
    vocab = read_vocabulary(folder / TOKENIZER)
    if hf.get("vocab_size") != len(vocab):
        raise DataError(str(folder / TOKENIZER),
                        f"has {len(vocab)} characters but {CONFIG}'s vocab_size is {hf.get('vocab_size')!r}")
    settings = layout.settings(hf, source)
    try:
        config = GPTConfig.from_dict({**settings, "vocab_size": len(vocab)})
    except (TypeError, ValueError) as exc:
        raise DataError(source, f"not a model spangpt can build ({exc})") from None
    tensors = {k: v for k, v in read_weights(folder).items() if not k.endswith(layout.ignored)}
    if layout.head not in tensors and hf.get("tie_word_embeddings", layout.tied_by_default):
        tensors[layout.head] = tensors.get(layout.embedding, torch.empty(0)).clone()  # spangpt's head is its own copy
    expected = {k: v.shape for k, v in layout.to_hf(expected_weights(config), config).items()}
    check_tensors(tensors, expected, str(folder / WEIGHTS), f"a {layout.architecture} of this {CONFIG}")
    documents = (hf.get(SPANGPT_ENTRY) or {}).get("pretraining_documents")
    if documents is not None and (isinstance(documents, bool) or not isinstance(documents, int) or documents < 1):
        raise DataError(source, f"{SPANGPT_ENTRY}.pretraining_documents must be a positive integer, got {documents!r}")
    state_dict = {k: v.contiguous() for k, v in layout.from_hf(tensors, config).items()}
    return Export(state_dict, config, vocab, documents)


def expected_weights(config: GPTConfig) -> dict[str, torch.Tensor]:
    """Storage-less tensors of spangpt's shapes, to map to a layout's names and shapes."""
    return {name: torch.empty(shape, device="meta") for name, shape in expected_shapes(config).items()}

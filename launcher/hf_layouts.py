"""How spangpt's weights sit in the two stock transformers classes that compute the same function.

vanilla -> GPT2LMHeadModel. GPT-2 is SPEC's block: pre-LayerNorm (eps 1e-5), a learned position table
(wpe is pos_emb[0]), attention scaled by 1/sqrt(head size), an exact-erf GELU MLP of 4 n_embd, a final
LayerNorm and a head without bias. Its Conv1D stores a Linear's weight transposed, and c_attn holds
the query, key and value projections side by side, in that order.

rope -> GPTNeoXForCausalLM, with use_parallel_residual off (SPEC's sequential block), rotary over the
whole head, attention biases and no position table (spangpt's rope variant has none either). NeoX
keeps each head's query, key and value rows together ([q; k; v] per head) and rotates channel i with
channel i + d/2 (rotate_half), where spangpt rotates the adjacent pair 2i, 2i+1 (model/rope.py).
Both turn pair i by the same angle, so reordering each head's query and key rows from
(0, 1, 2, 3, ...) to (0, 2, 4, ..., 1, 3, 5, ...) makes NeoX compute spangpt's attention exactly:
the rotated pairs are the same numbers, and a dot product does not depend on the order of the
channels as long as queries and keys share it. Values are not rotated and keep their order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from data.errors import DataError
from model import GPTConfig

LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, which model/blocks.py uses

Tensors = dict[str, torch.Tensor]


def pairs_to_halves(rows: torch.Tensor, n_head: int) -> torch.Tensor:
    """Each head's rows (0, 1, 2, 3, ...) reordered to (0, 2, ..., 1, 3, ...): adjacent pairs to halves."""
    head = rows.shape[0] // n_head
    return rows.reshape(n_head, head // 2, 2, *rows.shape[1:]).transpose(1, 2).reshape(rows.shape)


def halves_to_pairs(rows: torch.Tensor, n_head: int) -> torch.Tensor:
    """The inverse of pairs_to_halves."""
    head = rows.shape[0] // n_head
    return rows.reshape(n_head, 2, head // 2, *rows.shape[1:]).transpose(1, 2).reshape(rows.shape)


def require(hf: dict[str, Any], key: str, wanted: Any, default: Any, why: str, source: str) -> None:
    """A setting of config.json that must hold spangpt's value, or the class computes another function."""
    found = hf.get(key, default)
    if found != wanted:
        raise DataError(source, f"{key} is {found!r}, but spangpt's model needs {wanted!r} ({why})")


def rename(tensors: Tensors, names: dict[str, str], convert: Callable[[str, torch.Tensor], torch.Tensor]) -> Tensors:
    return {new: convert(old, tensors[old]) for old, new in names.items()}


class GPT2Layout:
    model_type = "gpt2"
    family = "GPT-2"
    architecture = "GPT2LMHeadModel"
    variant = "vanilla"
    embedding, head, tied_by_default = "transformer.wte.weight", "lm_head.weight", True
    ignored = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers older transformers versions saved
    conv1d = ("attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")  # stored transposed

    def hf_config(self, config: GPTConfig) -> dict[str, Any]:
        return {
            "n_positions": config.block_size, "n_embd": config.n_embd, "n_layer": config.n_layer,
            "n_head": config.n_head, "n_inner": 4 * config.n_embd,
            "activation_function": "gelu",  # nn.GELU is the exact erf form; GPT-2's own "gelu_new" is tanh
            "embd_pdrop": config.embd_pdrop, "resid_pdrop": config.resid_pdrop, "attn_pdrop": config.attn_pdrop,
            "layer_norm_epsilon": LAYER_NORM_EPS, "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "tie_word_embeddings": False,
        }

    def settings(self, hf: dict[str, Any], source: str) -> dict[str, Any]:
        n_embd = hf.get("n_embd", 768)
        require(hf, "activation_function", "gelu", "gelu_new", "spangpt's MLP uses the exact erf GELU", source)
        if hf.get("n_inner") not in (None, 4 * n_embd):
            raise DataError(source, f"n_inner is {hf['n_inner']!r}, but spangpt's MLP is 4 x n_embd = {4 * n_embd} "
                                    "wide")
        require(hf, "layer_norm_epsilon", LAYER_NORM_EPS, 1e-5, "nn.LayerNorm's eps", source)
        require(hf, "scale_attn_weights", True, True, "attention scaled by 1/sqrt(head size)", source)
        require(hf, "scale_attn_by_inverse_layer_idx", False, False, "the same scale in every layer", source)
        require(hf, "add_cross_attention", False, False, "a decoder without cross-attention", source)
        return {"variant": self.variant, "n_layer": hf.get("n_layer", 12), "n_head": hf.get("n_head", 12),
                "n_embd": n_embd, "block_size": hf.get("n_positions", 1024), "embd_pdrop": hf.get("embd_pdrop", 0.1),
                "resid_pdrop": hf.get("resid_pdrop", 0.1), "attn_pdrop": hf.get("attn_pdrop", 0.1)}

    def names(self, n_layer: int) -> dict[str, str]:
        """spangpt name -> GPT-2 name of every tensor that is only renamed (Conv1D ones are transposed)."""
        names = {"tok_emb.weight": "transformer.wte.weight", "ln_f.weight": "transformer.ln_f.weight",
                 "ln_f.bias": "transformer.ln_f.bias", "head.weight": "lm_head.weight"}
        for i in range(n_layer):
            ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
            for a, b in (("ln1", "ln_1"), ("ln2", "ln_2"), ("attn.proj", "attn.c_proj"), ("mlp.0", "mlp.c_fc"),
                         ("mlp.2", "mlp.c_proj")):
                names[f"{ours}{a}.weight"] = f"{theirs}{b}.weight"
                names[f"{ours}{a}.bias"] = f"{theirs}{b}.bias"
        return names

    def to_hf(self, sd: Tensors, config: GPTConfig) -> Tensors:
        names = self.names(config.n_layer)
        out = rename(sd, names, lambda old, t: t.t() if names[old].endswith(self.conv1d) else t)
        out["transformer.wpe.weight"] = sd["pos_emb"][0]
        for i in range(config.n_layer):
            attn = f"blocks.{i}.attn."
            parts = [f"{attn}{p}" for p in ("query", "key", "value")]
            out[f"transformer.h.{i}.attn.c_attn.weight"] = torch.cat([sd[f"{p}.weight"] for p in parts]).t()
            out[f"transformer.h.{i}.attn.c_attn.bias"] = torch.cat([sd[f"{p}.bias"] for p in parts])
        return out

    def from_hf(self, hf: Tensors, config: GPTConfig) -> Tensors:
        names = {theirs: ours for ours, theirs in self.names(config.n_layer).items()}
        sd = rename(hf, names, lambda old, t: t.t() if old.endswith(self.conv1d) else t)
        sd["pos_emb"] = hf["transformer.wpe.weight"][None]
        for i in range(config.n_layer):
            weight = hf[f"transformer.h.{i}.attn.c_attn.weight"].t()
            bias = hf[f"transformer.h.{i}.attn.c_attn.bias"]
            for part, w, b in zip(("query", "key", "value"), weight.chunk(3), bias.chunk(3)):
                sd[f"blocks.{i}.attn.{part}.weight"], sd[f"blocks.{i}.attn.{part}.bias"] = w, b
        return sd


class GPTNeoXLayout:
    model_type = "gpt_neox"
    family = "GPT-NeoX"
    architecture = "GPTNeoXForCausalLM"
    variant = "rope"
    embedding, head, tied_by_default = "gpt_neox.embed_in.weight", "embed_out.weight", False
    ignored = (".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")  # buffers of older versions

    def hf_config(self, config: GPTConfig) -> dict[str, Any]:
        return {
            "hidden_size": config.n_embd, "num_hidden_layers": config.n_layer,
            "num_attention_heads": config.n_head, "intermediate_size": 4 * config.n_embd, "hidden_act": "gelu",
            "max_position_embeddings": config.block_size, "layer_norm_eps": LAYER_NORM_EPS,
            "use_parallel_residual": False, "attention_bias": True, "tie_word_embeddings": False,
            # NeoX has one hidden dropout (embeddings, attention output, MLP output) besides attention's
            "hidden_dropout": config.resid_pdrop, "attention_dropout": config.attn_pdrop,
            "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base, "partial_rotary_factor": 1.0},
            "rotary_pct": 1.0, "rotary_emb_base": config.rope_base,  # the same, as transformers 4.x reads them
        }

    def settings(self, hf: dict[str, Any], source: str) -> dict[str, Any]:
        n_embd = hf.get("hidden_size", 6144)
        rope = hf.get("rope_parameters") or {}
        base = rope.get("rope_theta", hf.get("rotary_emb_base", 10000.0))
        fraction = rope.get("partial_rotary_factor", hf.get("rotary_pct", 0.25))
        if fraction != 1.0:
            raise DataError(source, f"partial_rotary_factor is {fraction!r}, but spangpt rotates the whole head (1.0)")
        if rope.get("rope_type", "default") != "default":
            raise DataError(source, f"rope_type is {rope['rope_type']!r}, but spangpt's rotary embedding is the "
                                    "default one")
        require(hf, "hidden_act", "gelu", "gelu", "spangpt's MLP uses the exact erf GELU", source)
        require(hf, "use_parallel_residual", False, True, "SPEC's block adds attention, then the MLP", source)
        require(hf, "attention_bias", True, True, "spangpt's projections have biases", source)
        require(hf, "intermediate_size", 4 * n_embd, 24576, "spangpt's MLP is 4 x n_embd wide", source)
        require(hf, "layer_norm_eps", LAYER_NORM_EPS, 1e-5, "nn.LayerNorm's eps", source)
        hidden = hf.get("hidden_dropout", 0.0)
        return {"variant": self.variant, "n_layer": hf.get("num_hidden_layers", 44),
                "n_head": hf.get("num_attention_heads", 64), "n_embd": n_embd,
                "block_size": hf.get("max_position_embeddings", 2048), "embd_pdrop": hidden, "resid_pdrop": hidden,
                "attn_pdrop": hf.get("attention_dropout", 0.0), "rope_base": float(base)}

    def names(self, n_layer: int) -> dict[str, str]:
        names = {"tok_emb.weight": "gpt_neox.embed_in.weight", "ln_f.weight": "gpt_neox.final_layer_norm.weight",
                 "ln_f.bias": "gpt_neox.final_layer_norm.bias", "head.weight": "embed_out.weight"}
        for i in range(n_layer):
            ours, theirs = f"blocks.{i}.", f"gpt_neox.layers.{i}."
            for a, b in (("ln1", "input_layernorm"), ("ln2", "post_attention_layernorm"),
                         ("attn.proj", "attention.dense"), ("mlp.0", "mlp.dense_h_to_4h"),
                         ("mlp.2", "mlp.dense_4h_to_h")):
                names[f"{ours}{a}.weight"] = f"{theirs}{b}.weight"
                names[f"{ours}{a}.bias"] = f"{theirs}{b}.bias"
        return names

    def to_hf(self, sd: Tensors, config: GPTConfig) -> Tensors:
        out = rename(sd, self.names(config.n_layer), lambda _, t: t)
        H = config.n_head
        for i in range(config.n_layer):
            attn = f"blocks.{i}.attn."
            for kind in ("weight", "bias"):
                q = pairs_to_halves(sd[f"{attn}query.{kind}"], H)
                k = pairs_to_halves(sd[f"{attn}key.{kind}"], H)
                v = sd[f"{attn}value.{kind}"]
                per_head = torch.stack([t.reshape(H, -1, *t.shape[1:]) for t in (q, k, v)], dim=1)  # (H, 3, d, ...)
                qkv = per_head.reshape(3 * config.n_embd, *q.shape[1:])
                out[f"gpt_neox.layers.{i}.attention.query_key_value.{kind}"] = qkv
        return out

    def from_hf(self, hf: Tensors, config: GPTConfig) -> Tensors:
        sd = rename(hf, {theirs: ours for ours, theirs in self.names(config.n_layer).items()}, lambda _, t: t)
        H = config.n_head
        for i in range(config.n_layer):
            for kind in ("weight", "bias"):
                qkv = hf[f"gpt_neox.layers.{i}.attention.query_key_value.{kind}"]
                per_head = qkv.reshape(H, 3, -1, *qkv.shape[1:])
                q, k, v = (per_head[:, j].reshape(config.n_embd, *qkv.shape[1:]) for j in range(3))
                sd[f"blocks.{i}.attn.query.{kind}"] = halves_to_pairs(q, H)
                sd[f"blocks.{i}.attn.key.{kind}"] = halves_to_pairs(k, H)
                sd[f"blocks.{i}.attn.value.{kind}"] = v
        return sd


LAYOUTS = {layout.variant: layout for layout in (GPT2Layout(), GPTNeoXLayout())}

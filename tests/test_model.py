"""The four variants against SPEC: parameter counts, causality, attention math, loss, init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model import GPT, VARIANTS
from models import small_config, spec_config

# SPEC's counts for its four variants (docs/experiment.md); every registered variant gets the other tests.
REFERENCE_PARAMETERS = {"vanilla": 3_323_392, "synthesizer": 3_076_988, "perceiver": 3_331_584, "rope": 3_290_624}


def small(variant: str, block_size: int = 32, **overrides) -> GPT:
    torch.manual_seed(0)
    config = dict(vocab_size=50, block_size=block_size, n_layer=4, n_head=4, n_embd=64, variant=variant, bottleneck_dim=8)
    config.update(overrides)
    return GPT(small_config(**config)).eval()


@pytest.mark.parametrize("variant", REFERENCE_PARAMETERS)
def test_parameter_count_at_reference_size(variant):
    model = GPT(spec_config(variant))
    assert model.num_parameters() == REFERENCE_PARAMETERS[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal(variant):
    """Changing inputs after t never changes outputs up to t, while later outputs do change."""
    model = small(variant)
    T = model.config.context_length
    torch.manual_seed(1)
    idx = torch.randint(0, 50, (2, T))
    with torch.no_grad():
        base, _ = model(idx)
        for t in (0, 5, 9, T - 2):
            changed = idx.clone()
            changed[:, t + 1 :] = torch.randint(0, 50, (2, T - t - 1))
            out, _ = model(changed)
            assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6, rtol=0), (variant, t)
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :], atol=1e-3), (variant, t)


def test_perceiver_output_past_the_bottleneck_sees_only_the_first_inputs_and_its_own():
    """SPEC's perceiver: slot i of the bottleneck sees inputs 0..i, output t sees slots 0..min(t, b-1) and its
    own input. So an output at t >= b cannot see inputs b..t-1: an answer written past the bottleneck is
    predicted a character at a time from the question's first b characters, its position and its own
    character (why the perceiver rows of docs/results.md stay at 0% with b = 32)."""
    model = small("perceiver")  # block_size 32, bottleneck_dim 8
    b, T = model.config.bottleneck_dim, model.config.context_length
    torch.manual_seed(1)
    idx = torch.randint(0, 50, (2, T))
    with torch.no_grad():
        base, _ = model(idx)
        for t in (b, b + 5, T - 1):
            changed = idx.clone()
            changed[:, b:t] = torch.randint(0, 50, (2, t - b))
            out, _ = model(changed)
            assert torch.allclose(out[:, t], base[:, t], atol=1e-6, rtol=0), t
        changed = idx.clone()
        changed[:, b - 1] = (idx[:, b - 1] + 1) % 50
        out, _ = model(changed)
        assert not torch.allclose(out[:, T - 1], base[:, T - 1], atol=1e-3)


@pytest.mark.parametrize("variant", ["vanilla", "rope"])
def test_vanilla_and_rope_attention_run_through_sdpa(variant, monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(kwargs.get("is_causal"))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    model = small(variant)
    model(torch.randint(0, 50, (2, 20)))
    assert calls == [True] * model.config.n_layer


def manual_attention(attn, x: torch.Tensor, rotate=None) -> torch.Tensor:
    """minGPT's explicit attention with the module's own weights: the math SPEC describes."""
    B, T, C = x.shape
    H = attn.n_head

    def heads(t):
        return t.view(B, T, H, C // H).transpose(1, 2)

    q, k, v = heads(attn.query(x)), heads(attn.key(x)), heads(attn.value(x))
    if rotate is not None:
        q, k = rotate(q), rotate(k)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).tril().logical_not(), float("-inf"))
    y = F.softmax(att, dim=-1) @ v
    return attn.proj(y.transpose(1, 2).reshape(B, T, C))


def test_sdpa_path_equals_explicit_attention():
    model = small("vanilla")
    attn = model.blocks[0].attn
    x = torch.randn(2, 20, 64)
    with torch.no_grad():
        assert torch.allclose(attn(x), manual_attention(attn, x), atol=1e-5)


def rotate_pairs_reference(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Su et al.: channels (2i, 2i+1) at position m turn by m * base^(-2i/d), as complex numbers."""
    T, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), theta)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2).float()


def test_rope_attention_equals_rotated_explicit_attention():
    model = small("rope")
    attn = model.blocks[0].attn
    x = torch.randn(2, 20, 64)
    with torch.no_grad():
        assert torch.allclose(attn(x), manual_attention(attn, x, rotate_pairs_reference), atol=1e-5)
    assert not hasattr(model, "pos_emb")


def test_loss_ignores_pad_targets():
    model = small("vanilla")
    idx = torch.randint(0, 50, (2, 16))
    targets = torch.randint(1, 50, (2, 16))
    targets[:, :7] = 0
    logits, loss = model(idx, targets)
    expected = F.cross_entropy(logits[:, 7:].reshape(-1, 50), targets[:, 7:].reshape(-1))
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_initialisation_follows_spec(variant):
    model = GPT(spec_config(variant))
    assert abs(model.head.weight.std().item() - 0.02) < 0.002
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.002
    assert torch.equal(model.ln_f.weight, torch.ones(256)) and torch.equal(model.ln_f.bias, torch.zeros(256))
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            assert torch.equal(module.bias, torch.zeros_like(module.bias)), name
    assert hasattr(model, "pos_emb") == model.variant.learned_positions
    if variant == "rope":
        assert not hasattr(model, "pos_emb")  # SPEC: rotary positions replace the learned ones
    if model.variant.learned_positions:
        assert torch.equal(model.pos_emb, torch.zeros(1, 128, 256))
    if variant == "synthesizer":
        w2 = model.blocks[0].attn.w2
        assert w2.shape == (32, 127) and w2.abs().max() <= 0.001 and w2.std() > 0.0004
    if variant == "perceiver":
        # Xavier-uniform on SPEC's (1, 32, 256) shape: torch's fans are 32*256 in, 1*256 out.
        bound = math.sqrt(6 / (32 * 256 + 1 * 256))
        assert model.down.C.abs().max() <= bound and model.down.C.abs().max() > 0.9 * bound


def test_weight_decay_only_on_linear_weights():
    model = GPT(spec_config("synthesizer"))
    decayed = model.decayed_parameter_names()
    names = dict(model.named_parameters())
    assert decayed <= set(names)
    assert "blocks.0.attn.w1.weight" in decayed and "head.weight" in decayed
    for name in ("tok_emb.weight", "pos_emb", "blocks.0.attn.w2", "blocks.0.attn.b2", "blocks.0.ln1.weight"):
        assert name not in decayed
    assert all(names[n].dim() == 2 for n in decayed)


def test_input_longer_than_context_is_refused():
    model = small("synthesizer")
    with pytest.raises(ValueError, match="exceeds the model's context of 31"):
        model(torch.zeros(1, 32, dtype=torch.long))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"variant": "linear"}, "variant must be one of"),
        ({"n_embd": 30}, "divisible by n_head"),
        ({"variant": "perceiver", "n_layer": 1}, "n_layer >= 2"),
        ({"attn_pdrop": 1.5}, "attn_pdrop"),
        ({"variant": "perceiver", "bottleneck_dim": None}, "bottleneck_dim: required by the perceiver variant"),
        ({"variant": "perceiver", "bottleneck_dim": 2.5}, "bottleneck_dim: expected an integer"),
        ({"bottleneck_width": 8}, "bottleneck_width: not a setting of any variant"),
    ],
)
def test_bad_config_values_are_named(overrides, message):
    config = dict(vocab_size=50, block_size=32, n_layer=4, n_head=4, n_embd=64, bottleneck_dim=8) | overrides
    with pytest.raises(ValueError, match=message):
        small_config(**config)


def test_the_perceiver_down_projection_normalises_both_the_basis_and_the_input_with_ln1():
    """SPEC (corrected 2026-12-01): out = C + attn(kv=ln1(x), q=ln1(C)), then out + mlp(ln2(out)); the
    course's hint and the Perceiver normalise latents and inputs alike. Spelled out with the block's own
    layers, so feeding C to the queries raw (the code before) or dropping ln1 on x fails."""
    model = small("perceiver")
    down = model.down
    torch.manual_seed(1)
    with torch.no_grad():
        down.ln1.weight.uniform_(0.5, 1.5)
        down.ln1.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 20, 64)
    attn = down.attn
    q = attn.query(down.ln1(down.C)).expand(3, -1, -1)
    kv = down.ln1(x)
    k, v = attn.key(kv), attn.value(kv)
    heads = lambda t: t.view(t.shape[0], t.shape[1], 4, 16).transpose(1, 2)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(-2, -1) / math.sqrt(16)
    mask = torch.ones(8, 20, dtype=torch.bool).tril()  # slot i sees inputs 0..i (the mask's top-left corner)
    y = (scores.masked_fill(~mask, float("-inf")).softmax(-1) @ heads(v)).transpose(1, 2).reshape(3, 8, 64)
    out = down.C + attn.proj(y)
    expected = out + down.mlp(down.ln2(out))
    assert torch.allclose(down(x), expected, atol=1e-5)

"""Configs: inheritance, overlays, overrides, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

import yaml

from launcher.config import ConfigError, config_differences, load_config, to_yaml, with_defaults
from launcher.engine import batch_geometry, deepspeed_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_reference_configs_reproduce_spec():
    pretrain = load_config(CONFIGS / "pretrain.yaml")
    assert pretrain.phase == "pretrain" and pretrain.run_dir == Path("runs/vanilla/pretrain")
    assert (pretrain.model.n_layer, pretrain.model.n_head, pretrain.model.n_embd, pretrain.data.block_size) == (4, 8, 256, 128)
    assert pretrain.model.dropout == 0.1 and pretrain.train.betas == (0.9, 0.95)
    assert (pretrain.train.epochs, pretrain.train.global_batch_size, pretrain.train.learning_rate) == (650, 128, 6e-3)
    assert pretrain.train.weight_decay == 0.1 and pretrain.train.grad_clip == 1.0 and pretrain.train.warmup_tokens == 512 * 20
    finetune = load_config(CONFIGS / "finetune.yaml")
    assert (finetune.train.epochs, finetune.train.global_batch_size, finetune.train.learning_rate) == (10, 256, 6e-4)
    assert finetune.init_from == Path("runs/vanilla/pretrain/export")
    scratch = load_config(CONFIGS / "finetune_scratch.yaml")
    assert (scratch.train.epochs, scratch.init_from, scratch.data.corpus) == (75, None, Path("datasets/birthplaces/wiki.txt"))
    evaluate = load_config(CONFIGS / "evaluate.yaml")
    assert evaluate.init_from == Path("runs/vanilla/finetune/export") and evaluate.eval.max_new_tokens == 32


@pytest.mark.parametrize("variant", ["synthesizer", "perceiver", "rope"])
def test_variant_overlays_move_the_pipeline(variant):
    overlay = CONFIGS / "variants" / f"{variant}.yaml"
    pretrain = load_config([CONFIGS / "pretrain.yaml", overlay])
    finetune = load_config([CONFIGS / "finetune.yaml", overlay])
    assert pretrain.model.variant == finetune.model.variant == variant
    assert pretrain.run_dir == Path(f"runs/{variant}/pretrain")
    assert finetune.init_from == pretrain.run_dir / "export"


def test_overrides_keep_types_and_the_resolved_config_round_trips(tmp_path):
    config = load_config(CONFIGS / "pretrain.yaml", ["train.zero_stage=3", "train.betas=[0.8, 0.99]", "model.variant=rope"])
    assert config.train.zero_stage == 3 and config.train.betas == (0.8, 0.99) and config.model.variant == "rope"
    (tmp_path / "resolved.yaml").write_text(to_yaml(config), encoding="utf-8")
    assert load_config(tmp_path / "resolved.yaml") == config


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.zero_stag=1"], "pretrain.yaml: train.zero_stag: unknown key"),
        (["surprise=1"], "pretrain.yaml: surprise: unknown key"),
        (["train.zero_stage=4"], "train.zero_stage: Input should be 0, 1, 2 or 3 (got 4)"),
        (["train.precision=fp8"], "train.precision: Input should be 'fp32', 'tf32', 'bf16' or 'fp16' (got 'fp8')"),
        (["train.global_batch_size=-3"], "train.global_batch_size: Input should be greater than or equal to 1"),
        (["model.n_embd=100"], "model.n_embd: 100 is not divisible by model.n_head (8)"),
        (["data.corpus=null"], "data.corpus: required to pretrain"),
        (["run_dir=runs/{nope}"], "run_dir: unknown placeholder"),
        (["train.zero_stage"], "--set train.zero_stage: expected key=value"),
        (["data.prefetch=maybe"], "data.prefetch: expected auto, on or off (got 'maybe')"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "pretrain.yaml", overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_yaml_and_missing_files_are_named(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("phase: pretrain\ntrain: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: not valid YAML"):
        load_config(broken)
    child = tmp_path / "child.yaml"
    child.write_text("base: missing.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"missing.yaml: config file not found"):
        load_config(child)


@pytest.mark.parametrize("world_size, micro, expected", [(1, None, (128, 1)), (2, None, (64, 1)), (2, 16, (16, 4)), (4, 8, (8, 4))])
def test_global_batch_is_kept_at_every_world_size(world_size, micro, expected):
    config = load_config(CONFIGS / "pretrain.yaml", [f"train.micro_batch_size={micro or 'null'}"])
    assert batch_geometry(config.train, world_size) == expected
    ds = deepspeed_config(config.train, world_size)
    assert ds["train_batch_size"] == 128 == world_size * ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"]


def test_global_batch_not_divisible_names_the_keys():
    config = load_config(CONFIGS / "pretrain.yaml", ["train.micro_batch_size=48"])
    with pytest.raises(ConfigError, match=r"train.global_batch_size: 128 is not divisible by world size x train.micro_batch_size \(2 x 48\)"):
        batch_geometry(config.train, 2)


def test_prefetch_reads_on_and_off():
    assert load_config(CONFIGS / "pretrain.yaml").data.prefetch == "auto"
    assert load_config(CONFIGS / "pretrain.yaml", ["data.prefetch=on"]).data.prefetch is True
    assert load_config(CONFIGS / "pretrain.yaml", ["data.prefetch=off"]).data.prefetch is False


@pytest.mark.parametrize("override, message", [
    ("train.betas=[0.8, 0.99", "--set train.betas=[0.8, 0.99: not a valid value for train.betas"),
    ("model.bottleneck_dim=[3", "--set model.bottleneck_dim=[3: not a valid value for model.bottleneck_dim"),
    ("model.bottleneck_dim=wide", "model.bottleneck_dim: expected an integer, got 'wide'"),
    ("train.epochs={3", "--set train.epochs={3: not a valid value for train.epochs"),
])
def test_an_override_that_does_not_parse_names_its_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "pretrain.yaml", [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_text_overrides_are_taken_verbatim():
    """Paths and names are text, whatever YAML would make of them (a mapping, a boolean, a flow list)."""
    config = load_config(CONFIGS / "pretrain.yaml", ["run_dir=runs/a: b", "eval.predictions=true", "data.corpus=[x].txt"])
    assert config.run_dir == Path("runs/a: b") and config.eval.predictions == "true"
    assert config.data.corpus == Path("[x].txt")
    assert load_config(CONFIGS / "finetune_scratch.yaml", ["init_from=null"]).init_from is None


def test_variant_settings_come_from_the_registry():
    """bottleneck_dim is the perceiver's (declared in model/variants.py); a key no variant declares is refused."""
    perceiver = load_config(CONFIGS / "pretrain.yaml", ["model.variant=perceiver", "model.bottleneck_dim=16"])
    assert perceiver.model.options == {"bottleneck_dim": 16}
    assert load_config(CONFIGS / "pretrain.yaml", ["model.variant=rope"]).model.options == {"rope_base": 10000.0}
    with pytest.raises(ConfigError, match=r"pretrain.yaml: model.bottleneck_width: not a setting of any variant"):
        load_config(CONFIGS / "pretrain.yaml", ["model.bottleneck_width=16"])
    with pytest.raises(ConfigError, match=r"model.variant: expected one of vanilla, synthesizer, perceiver, rope"):
        load_config(CONFIGS / "pretrain.yaml", ["model.variant=linear"])


def test_spec_shape_and_schedule_are_not_defaults_in_code(tmp_path):
    """A config that leaves out the model's shape or the schedule is refused, not filled with SPEC's values."""
    bare = tmp_path / "bare.yaml"
    bare.write_text("phase: pretrain\nrun_dir: r\ndata: {corpus: c.txt, block_size: 128}\n"
                    "model: {variant: vanilla, n_layer: 4, n_head: 8, dropout: 0.1}\n"
                    "train: {epochs: 650, global_batch_size: 128, learning_rate: 6.0e-3, betas: [0.9, 0.95],"
                    " weight_decay: 0.1, grad_clip: 1.0}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bare.yaml: model.n_embd: required \(and 1 more\)"):
        load_config(bare)


@pytest.mark.parametrize("overrides, message", [
    (["model.variant=rope", "model.n_embd=12", "model.n_head=4"], "model.n_embd: rope needs an even head size (n_embd / n_head = 12 / 4)"),
    (["model.variant=perceiver", "model.n_layer=1"], "model.n_layer: perceiver needs n_layer >= 2 (a down- and an up-projection block)"),
    (["model.variant=perceiver", "model.bottleneck_dim=500"], "model.bottleneck_dim: 500 exceeds block_size (128), the perceiver's limit"),
])
def test_a_shape_the_variant_cannot_build_is_refused_when_the_config_loads(overrides, message):
    """Before any file is read or any run starts (a sweep's --dry-run included), not as a traceback later."""
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "pretrain.yaml", overrides)
    assert str(info.value) == f"{CONFIGS / 'pretrain.yaml'}: {message}"


def test_variant_options_read_numbers_as_the_other_fields_do():
    assert load_config(CONFIGS / "pretrain.yaml", ["model.variant=rope", "model.rope_base=1e4"]).model.options == {"rope_base": 10000.0}
    assert load_config(CONFIGS / "pretrain.yaml", ["model.variant=perceiver", "model.bottleneck_dim=16.0"]).model.options == {"bottleneck_dim": 16}
    with pytest.raises(ConfigError, match=r"model.bottleneck_dim: expected an integer, got 2.5"):
        load_config(CONFIGS / "pretrain.yaml", ["model.variant=perceiver", "model.bottleneck_dim=2.5"])


def test_a_config_saved_before_a_key_existed_reads_as_its_default():
    """A run folder or checkpoint from before data.replay existed still matches today's config (the
    sweep skips it, a resume continues it), while one saved with another value does not."""
    today = yaml.safe_load(to_yaml(load_config(CONFIGS / "pretrain.yaml")))
    older = yaml.safe_load(to_yaml(load_config(CONFIGS / "pretrain.yaml")))
    del older["data"]["replay"]
    assert config_differences(older, today)  # as saved, it lacks the key
    assert config_differences(with_defaults(older), today) == {}
    finetune = yaml.safe_load(to_yaml(load_config(CONFIGS / "finetune.yaml", ["data.corpus=wiki.txt", "data.replay=0.5"])))
    plain = yaml.safe_load(to_yaml(load_config(CONFIGS / "finetune.yaml", ["data.corpus=wiki.txt"])))
    assert list(config_differences(with_defaults(finetune), plain)) == ["data.replay"]

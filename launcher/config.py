"""The run configuration: YAML with `base:` inheritance and `--set a.b=c` overrides, validated once.

A config file may name `base: other.yaml` (relative to itself), or a list of bases merged in order;
its own keys are merged over them, recursively. Several files may be given (`--config a.yaml
overlay.yaml`): each is merged over the previous one, which is how the variant overlays work.
`run_dir` and `init_from` may use `{variant}` and `{seed}`, so one overlay moves a whole pipeline to
its own directories. `--set key=value` overrides one key in its field's type (override_value). SPEC's
shape and schedule have no defaults here: they live in configs/pretrain.yaml, which every config
bases on. Every problem becomes one ConfigError line naming the key. Relative paths in a config are
relative to the directory the command runs in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from launcher.precision import PRECISIONS
from model.config import VARIANTS, GPTConfig, variant_options

MAX_BASE_DEPTH = 16


class ConfigError(ValueError):
    """A bad config: the message is one line naming the file or key and the problem."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Section):
    corpus: Path | None = Field(None, description="pretraining corpus: a text file or a data.prepare directory")
    finetune: Path | None = Field(None, description="question<TAB>place file to finetune on")
    block_size: int = Field(ge=8, description="characters per example")
    question_mix: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "pretraining only: the share of examples that are data.finetune's questions with their answers in the "
        "finetuning format instead of corrupted documents (a knowledge-storage recipe); 0: SPEC's recipe"))
    replay: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "finetuning only: the share of examples that are span corruptions of data.corpus's documents, replayed among "
        "the questions (data/replay.py); an epoch is still every question once; 0: SPEC's finetune"))
    objective: Literal["span_corruption", "text"] = Field("span_corruption", description=(
        "pretraining only: what a document example teaches. span_corruption: SPEC's prefix⁇suffix⁇masked; "
        "text: the document's first block_size characters as plain text, every character predicted"))
    masking: Literal["random", "salient"] = Field("random", description=(
        "span_corruption's masked span, label-free (pretraining, and a finetune's data.replay documents; a finetune "
        "without replay corrupts nothing, so it reads no masking): random is SPEC's; "
        "salient masks a name, number or date found in the document text (data.salient), SPEC's span where the "
        "truncation holds none"))
    augment: Literal["none", "name_anchored"] = Field("none", description=(
        "pretraining only, label-free: name_anchored shows each document as its title (the person's name) "
        "followed by the paragraph from a random word, every sentence naming the person in full (data.augment)"))
    prefetch: Literal["auto"] | bool = Field(
        "auto", description="build micro-batches ahead on a thread, pinned (on/off); auto: on GPUs, off on CPUs where every core computes")

    workers: int = Field(0, ge=0, description=(
        "processes that build micro-batches ahead, moved to the device a chunk at a time (GPU runs, where one "
        "Python thread cannot keep up); 0: built in the training process (data.prefetch)"))

    @field_validator("prefetch", mode="before")
    @classmethod
    def prefetch_choice(cls, value: Any) -> Any:
        if value == "auto" or isinstance(value, bool):  # YAML reads on/off as booleans
            return value
        raise ValueError("expected auto, on or off")


class ModelSection(Section):
    """The model's shape. Settings that only one variant reads (bottleneck_dim) are declared by that
    variant in the registry (model/variants.py, registered in model.VARIANTS) and checked against it; unknown ones are errors."""

    model_config = ConfigDict(extra="allow", frozen=True)
    variant: str = Field(description="a registered variant (model.VARIANTS)")
    n_layer: int = Field(ge=1)
    n_head: int = Field(ge=1)
    n_embd: int = Field(ge=1)
    dropout: float = Field(ge=0.0, lt=1.0, description="embedding, attention and residual dropout")

    @field_validator("variant")
    @classmethod
    def registered(cls, value: str) -> str:
        if value not in VARIANTS:
            raise ValueError(f"expected one of {', '.join(VARIANTS)}")
        return value

    @property
    def options(self) -> dict[str, Any]:
        """The chosen variant's own settings, defaults filled in."""
        return variant_options(self.variant, self.model_extra or {})


class TrainConfig(Section):
    epochs: float = Field(gt=0, description="passes over the data")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    global_batch_size: int = Field(ge=1, description="examples per optimizer step, at any world size")
    micro_batch_size: int | None = Field(None, ge=1, description="examples per rank per forward; default global / world size")
    learning_rate: float = Field(gt=0)
    betas: tuple[float, float]
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(ge=0, description="gradient-norm clipping; 0 disables")
    warmup_tokens: int = Field(ge=0)
    final_tokens: int | Literal["run"] | None = Field(None, description=(
        "end of cosine decay: a token count; run: this run's own last token (of train.epochs, whatever the data's "
        "size); default 200 x pretraining documents x block_size (SPEC's, for every phase)"))
    zero_stage: Literal[0, 1, 2, 3] = 0
    precision: Literal[PRECISIONS] = Field(
        "fp32", description="fp32; tf32 (TF32 matmuls on CUDA); bf16 or fp16 (DeepSpeed's torch_autocast over fp32 "
                            "weights; fp16 with dynamic loss scaling): launcher/precision.py")
    loss_scale_power: int = Field(
        16, ge=0, le=64, description="fp16: the dynamic loss scale starts at 2^this (DeepSpeed's fp16.initial_scale_power)")
    compile: bool = Field(False, description="torch.compile the model (DeepSpeed engine.compile); helps launch-bound GPUs")
    checkpoint_every: int = Field(0, ge=0, description="optimizer steps between checkpoints; 0: only at the end")
    log_every: int = Field(10, ge=1)
    resume: Literal["auto", "never", "required"] = Field(
        "auto", description="auto: continue from run_dir's latest complete checkpoint if any; required: fail without one")
    resume_universal: bool = Field(
        False, description="resume ZeRO 1-3 through DeepSpeed's universal format even at the saving world size "
                           "(it is used anyway at another world size)")

    @field_validator("final_tokens", mode="before")
    @classmethod
    def token_count_or_run(cls, value: Any) -> Any:
        if value is None or value == "run" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("a positive token count or run (this run's own end)")


class EvalConfig(Section):
    questions: Path | None = Field(None, description="question file to predict (with or without answers)")
    predictions: str = Field("predictions.txt", description="file name inside run_dir")
    max_new_tokens: int = Field(32, ge=1)
    batch_size: int = Field(128, ge=1, description="questions decoded together per rank")
    samples: int = Field(8, ge=0, description="predictions shown in TensorBoard's text panel")


class DistributedSection(Section):
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="auto: one GPU per process where GPUs are visible, else CPUs; cpu: CPUs even beside GPUs")
    backend: Literal["auto", "nccl", "gloo"] = Field("auto", description="auto: nccl on GPUs, gloo on CPUs")
    timeout_minutes: float = Field(10, gt=0, description="collective timeout: a dead peer ends the job after this")


class RunConfig(Section):
    phase: Literal["pretrain", "finetune", "evaluate"]
    run_dir: Path
    seed: int = 0
    init_from: Path | None = Field(None, description=(
        "a spangpt export directory (weights, vocab.json, model.json), a Hugging Face folder or a course .params "
        "file (docs/convert.md); the weights a finetune or evaluation reads, or a pretraining continues from"))
    data: DataConfig
    model: ModelSection
    train: TrainConfig
    eval: EvalConfig = EvalConfig()
    distributed: DistributedSection = DistributedSection()

    @model_validator(mode="after")
    def phase_inputs(self) -> "RunConfig":
        if self.phase == "pretrain" and self.data.corpus is None:
            raise ValueError("data.corpus: required to pretrain")
        if self.phase == "pretrain" and self.data.question_mix > 0:
            if self.data.finetune is None:
                raise ValueError("data.finetune: required to mix training questions into pretraining (data.question_mix)")
            if self.eval.questions is not None and self.eval.questions == self.data.finetune:
                raise ValueError("data.question_mix: data.finetune is eval.questions; only the finetuning split may be mixed in")
        if self.data.masking != "random" and self.data.objective != "span_corruption":
            raise ValueError(f"data.masking: {self.data.masking} chooses the masked span of span corruption, "
                             f"and data.objective is {self.data.objective}")
        if self.data.replay > 0 and self.phase != "finetune":
            raise ValueError(f"data.replay: finetuning only, and this is a {self.phase} config "
                             "(pretraining mixes questions in with data.question_mix)")
        if self.data.replay > 0 and self.data.corpus is None:
            raise ValueError("data.replay: needs data.corpus, the documents to replay")
        if self.phase == "finetune":
            if self.data.finetune is None:
                raise ValueError("data.finetune: required to finetune")
            if self.init_from is None and self.data.corpus is None:
                raise ValueError("data.corpus: required to finetune without init_from (it fixes the vocabulary)")
        if self.phase == "evaluate":
            if self.init_from is None:
                raise ValueError("init_from: required to evaluate (an export directory)")
            if self.eval.questions is None:
                raise ValueError("eval.questions: required to evaluate")
        if self.model.n_embd % self.model.n_head:
            raise ValueError(f"model.n_embd: {self.model.n_embd} is not divisible by model.n_head ({self.model.n_head})")
        try:  # the variant's own settings and shape rules, before any file is read (vocab_size is not known yet)
            gpt_config(self, vocab_size=1)
        except ValueError as exc:
            key = str(exc).split(":")[0]
            raise ValueError(f"{'data' if key == 'block_size' else 'model'}.{exc}") from None
        return self


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    return loaded


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_tree(path: Path, depth: int = 0) -> dict[str, Any]:
    """A config file merged over its chain of `base:` files."""
    if depth > MAX_BASE_DEPTH:
        raise ConfigError(f"{path}: base: chain deeper than {MAX_BASE_DEPTH} (a cycle?)")
    raw = read_yaml(path)
    bases = raw.pop("base", None)
    if bases is None:
        return raw
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: base: must be a file name or a list of file names")
    tree: dict[str, Any] = {}
    for base in bases:
        tree = merge(tree, load_tree(path.parent / base, depth + 1))
    return merge(tree, raw)


def takes_text(key: str) -> bool:
    """Whether the config field at a dotted key holds text (a string or a path), read verbatim."""
    section: type[BaseModel] = RunConfig
    for part in key.split("."):
        field = section.model_fields.get(part)
        if field is None:
            return False  # an unknown key or a variant's setting: validation names it
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section = annotation
            continue
        return annotation in (str, Path) or any(arg in (str, Path) for arg in get_args(annotation))
    return False


def override_value(key: str, text: str) -> Any:
    """`--set key=text` in the type of the field it sets: text fields take the text as it is (`null`
    clears an optional one); every other field reads it as YAML, so numbers, booleans and lists keep
    their types, and text that is not valid YAML is an error naming the key, never a string."""
    if takes_text(key):
        return None if text in ("null", "~") else text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}={text}: not a valid value for {key} ({getattr(exc, 'problem', None) or exc})") from None


def apply_override(tree: dict[str, Any], assignment: str) -> dict[str, Any]:
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {assignment}: expected key=value, e.g. train.zero_stage=3")
    override: dict[str, Any] = override_value(key, text)
    for part in reversed(key.split(".")):
        override = {part: override}
    return merge(tree, override)


def describe_error(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required"
    if not key:  # cross-field checks already name their key
        return error["msg"].removeprefix("Value error, ")
    return f"{key}: {error['msg'].removeprefix('Value error, ')} (got {error.get('input')!r})"


def fill_placeholders(config: RunConfig) -> RunConfig:
    values = {"variant": config.model.variant, "seed": config.seed}
    updates = {}
    for key in ("run_dir", "init_from"):
        value = getattr(config, key)
        if value is not None:
            try:
                updates[key] = Path(str(value).format(**values))
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"{key}: unknown placeholder in {value} ({exc}); use {{variant}} or {{seed}}") from None
    return config.model_copy(update=updates)


def load_config(paths: str | Path | list[str | Path], overrides: list[str] | None = None) -> RunConfig:
    """The validated config of a run, or a ConfigError naming the file and key."""
    paths = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    tree: dict[str, Any] = {}
    for path in paths:
        tree = merge(tree, load_tree(path))
    for assignment in overrides or []:
        tree = apply_override(tree, assignment)
    try:
        config = RunConfig.model_validate(tree)
    except ValidationError as exc:
        first = describe_error(exc.errors()[0])
        more = len(exc.errors()) - 1
        raise ConfigError(f"{paths[-1]}: {first}" + (f" (and {more} more)" if more else "")) from None
    return fill_placeholders(config)


def gpt_config(config: RunConfig, vocab_size: int) -> GPTConfig:
    """The model a run builds: the config's shape over the vocabulary its corpus (or export) fixes."""
    m = config.model
    return GPTConfig(
        vocab_size=vocab_size, block_size=config.data.block_size, n_layer=m.n_layer, n_head=m.n_head,
        n_embd=m.n_embd, variant=m.variant, embd_pdrop=m.dropout, resid_pdrop=m.dropout, attn_pdrop=m.dropout,
        options=m.options,
    )


def with_defaults(tree: dict[str, Any]) -> dict[str, Any]:
    """A saved config tree with the keys added to the schema since it was saved, at their defaults: every
    new key defaults to the behaviour before it existed, so an older run folder or checkpoint still
    matches the config that would make it today. A tree that no longer validates stays as it is."""
    try:
        return RunConfig.model_validate(tree).model_dump(mode="json")
    except ValidationError:
        return tree


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every dotted key whose value differs between two resolved config trees (as config.yaml holds
    them), in the trees' order, each as "key: old there, new now". The sweep reports the first when a
    run folder holds another config; resume reports those outside RESUME_MAY_CHANGE."""
    found: dict[str, str] = {}
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found.update(config_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            found[f"{prefix}{key}"] = f"{prefix}{key}: {a!r} there, {b!r} now"
    return found


# Keys that may differ between a checkpoint's run and the run that resumes it: where and how often it
# logs and saves, how it is launched (world size, micro-batches, compilation, prefetching), when it
# stops, and what it evaluates afterwards. Every other key changes the math or the data, so a resume
# with another value is refused (launcher/resume.py) rather than silently mixing two runs.
RESUME_MAY_CHANGE = (
    "run_dir", "train.log_every", "train.checkpoint_every", "train.resume", "train.resume_universal", "train.max_steps",
    "train.micro_batch_size", "train.compile", "data.prefetch", "data.workers", "eval", "distributed",
)


def to_yaml(config: RunConfig) -> str:
    """The resolved config, as written into the run directory: loadable again with load_config."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

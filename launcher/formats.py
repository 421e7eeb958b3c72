"""The model formats init_from reads and `python -m launcher.convert` writes, in one registry.

spangpt: an export directory (launcher/export.py). hf: a Hugging Face folder, GPT-2 or GPT-NeoX with
a character tokenizer (launcher/hf_format.py). course: the state dict the CS224N course's run.py
saves, a .params file (launcher/course_format.py). init_from may name any of them; every phase reads
it through `read_init_from`, and launcher/phases.py checks the result against the config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data.corpus import DocumentCorpus
from launcher.config import ConfigError, RunConfig
from launcher.course_format import read_course, write_course
from launcher.export import MODEL, Export, read_export
from launcher.hf_format import CONFIG, SPANGPT_ENTRY, is_hf_folder, read_hf, write_hf


@dataclass(frozen=True)
class ModelFormat:
    name: str
    description: str
    recognises: Callable[[Path], bool]
    read: Callable[[Path, RunConfig], Export]
    write: Callable[[Export, Path, str, bool], None] | None = None  # (export, out, source, overwrite)


def read_hf_init(folder: Path, config: RunConfig) -> Export:
    """A Hugging Face folder; one made outside spangpt may lack the pretraining document count that
    ends the learning-rate decay, which only evaluation can do without."""
    export = read_hf(folder)
    if export.pretraining_documents is None and config.phase != "evaluate":
        if config.data.corpus is None:
            raise ConfigError(
                f"init_from: {folder / CONFIG} has no {SPANGPT_ENTRY}.pretraining_documents (the pretraining corpus's "
                f"document count, which ends the learning-rate decay): set data.corpus to that corpus, or add "
                f'"{SPANGPT_ENTRY}": {{"pretraining_documents": N}} to it')
        export.pretraining_documents = len(DocumentCorpus(Path(config.data.corpus)))
    return export


FORMATS: dict[str, ModelFormat] = {
    f.name: f for f in (
        ModelFormat("spangpt", "spangpt's export directory: model.safetensors, vocab.json, model.json",
                    lambda path: path.is_dir() and (path / MODEL).is_file(), lambda path, _: read_export(path)),
        ModelFormat("hf", "a Hugging Face folder (GPT-2 for vanilla, GPT-NeoX for rope) with a character tokenizer",
                    is_hf_folder, read_hf_init, write_hf),
        ModelFormat("course", "the course's run.py state dict (.params), loadable with strict=True",
                    Path.is_file, read_course, write_course),
    )
}


def format_of(path: Path) -> ModelFormat:
    """The first format that recognises `path`; else spangpt's, whose reader names the file it lacks."""
    return next((f for f in FORMATS.values() if f.recognises(path)), FORMATS["spangpt"])


def read_init_from(config: RunConfig) -> Export:
    path = Path(config.init_from)
    if not path.exists():
        raise ConfigError(f"init_from: {path} not found (an export directory, a Hugging Face folder or a course "
                          ".params file)")
    return format_of(path).read(path, config)

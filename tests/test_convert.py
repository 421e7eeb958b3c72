"""Models leave spangpt and come back (launcher/convert.py, launcher/formats.py; docs/convert.md).

The Hugging Face folders are loaded with the real transformers library (offline), and give
spangpt's logits, tokens and greedy predictions; the course's state dicts load strictly into the
course's module structure (tests/course_reference.py) and give its logits; both come back through
init_from with identical weights; every bad input is one line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

os.environ["HF_HUB_OFFLINE"] = "1"  # never the network (read when transformers loads): every model here is local
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import course_reference  # noqa: E402
from conftest import run_module  # noqa: E402
from launch import ROOT, check, launch  # noqa: E402

from data.corpus import open_corpus  # noqa: E402
from data.errors import DataError  # noqa: E402
from data.vocab import MASK, PAD, Vocabulary  # noqa: E402
from launcher import convert  # noqa: E402
from launcher.config import ConfigError, load_config  # noqa: E402
from launcher.evaluate import predict_shard, prediction_of  # noqa: E402
from launcher.export import read_export, write_export  # noqa: E402
from launcher.phases import checked_export  # noqa: E402
from model import GPT, VARIANTS  # noqa: E402
from models import small_config  # noqa: E402

CONFIGS = ROOT / "configs"
QUESTIONS = ["Where was Ann Lee born?", "Where was José Ñúñez born?", "Where was Lee Chen born?", "Who is Zoë?"]
CORPUS = "\n".join([
    "Ann Lee was born in London. She studied at Oxford (1979-1983) & then moved.",
    "José Ñúñez, born in São Paulo; a painter: \"Zoë's friend\".",
    "Lee Chen was born in Paris, 12 May 1901, and died in Köln.",
    *(f"{q} Nobody knows." for q in QUESTIONS),
]) + "\n"
SHAPE = {"n_layer": 2, "n_head": 4, "n_embd": 32, "block_size": 64, "bottleneck_dim": 8}


def sharpened(model: GPT, seed: int) -> GPT:
    """SPEC's initialisation plus noise, so that logits differ clearly (greedy decoding without near-ties)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The corpus, a question file, and one export per variant (n_embd 32, 4 heads, 2 layers, block 64)."""
    root = tmp_path_factory.mktemp("convert")
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    (root / "questions.tsv").write_text("".join(f"{q}\tLondon\n" for q in QUESTIONS), encoding="utf-8")
    vocab = Vocabulary.from_text(CORPUS)
    for i, variant in enumerate(VARIANTS):
        torch.manual_seed(i)
        config = small_config(variant, vocab_size=len(vocab), **SHAPE)
        write_export(root / variant, sharpened(GPT(config), i).state_dict(), config, vocab, 4)
    return root


def spangpt_model(export_dir: Path) -> GPT:
    export = read_export(export_dir)
    model = GPT(export.model_config)
    model.load_state_dict(export.state_dict)
    return model.eval()


def run_config(workspace: Path, variant: str, init_from: Path, *extra: str, corpus: bool = True,
               phase: str = "finetune"):
    overrides = [f"init_from={init_from}", f"model.variant={variant}", "model.dropout=0.1",
                 f"data.corpus={workspace / 'corpus.txt' if corpus else 'null'}",
                 f"data.finetune={workspace / 'questions.tsv'}", f"eval.questions={workspace / 'questions.tsv'}",
                 *(f"{'data' if k == 'block_size' else 'model'}.{k}={v}" for k, v in SHAPE.items()), *extra]
    return load_config(CONFIGS / f"{phase}.yaml", overrides)


def spangpt_predictions(export_dir: Path) -> list[str]:
    """SPEC's greedy predictions for QUESTIONS, through the evaluation's own decoding (launcher/evaluate.py)."""
    vocab = read_export(export_dir).vocab
    return predict_shard(spangpt_model(export_dir), vocab, QUESTIONS, batch_size=4, max_new_tokens=32)


def hf_greedy_predictions(folder: Path, questions: list[str]) -> list[str]:
    """Hugging Face's greedy `generate` on a converted folder, one question at a time, read as the evaluation reads."""
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    predictions = []
    for question in questions:
        ids = torch.tensor([tokenizer(question + MASK).input_ids])
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False)
        predictions.append(prediction_of(question + MASK + tokenizer.decode(out[0, ids.shape[1]:])))
    return predictions


def predictions_file(run_dir: Path) -> list[str]:
    """predictions.txt's lines; the evaluation writes a newline inside a prediction as a space."""
    return (run_dir / "predictions.txt").read_text(encoding="utf-8").split("\n")[:-1]


def assert_same_export(found, expected) -> None:
    assert found.model_config == expected.model_config and found.vocab == expected.vocab
    assert found.pretraining_documents == expected.pretraining_documents
    assert found.state_dict.keys() == expected.state_dict.keys()
    assert all(torch.equal(found.state_dict[k], v) for k, v in expected.state_dict.items())


@pytest.fixture(scope="module")
def hf_folders(workspace) -> dict[str, Path]:
    """`python -m launcher.convert EXPORT --to hf OUT`, as a user types it, for vanilla and rope."""
    folders = {}
    for variant in ("vanilla", "rope"):
        out = workspace / f"hf-{variant}"
        result = run_module("launcher.convert", str(workspace / variant), "--to", "hf", str(out))
        assert result.returncode == 0, result.stderr
        folders[variant] = out
    return folders


# --- Hugging Face ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant, architecture", [("vanilla", "GPT2LMHeadModel"), ("rope", "GPTNeoXForCausalLM")])
def test_hugging_face_gives_spangpts_tokens_and_logits(workspace, hf_folders, variant, architecture):
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_folders[variant]).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_folders[variant])
    assert type(hf).__name__ == architecture
    model = spangpt_model(workspace / variant)
    vocab = read_export(workspace / variant).vocab
    texts = [(CORPUS[:40] + MASK + "London" + MASK).ljust(64, "□"), ("".join(vocab.itos)[::-1] * 2)[:64]]
    for text in texts:
        assert tokenizer(text).input_ids == vocab.encode(text).tolist()
        assert tokenizer.decode(vocab.encode(text).tolist()) == text
    assert (tokenizer.pad_token, tokenizer.pad_token_id, tokenizer.mask_token_id) == ("□", 0, 1)
    ids = torch.tensor([tokenizer(text).input_ids for text in texts])
    with torch.no_grad():
        ours, _ = model(ids)
        theirs = hf(ids).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["vanilla", "rope"])
def test_greedy_generation_gives_spangpts_predictions(workspace, hf_folders, variant):
    assert hf_greedy_predictions(hf_folders[variant], QUESTIONS) == spangpt_predictions(workspace / variant)


@pytest.mark.parametrize("variant", ["vanilla", "rope"])
def test_a_hugging_face_folder_comes_back_exactly_through_init_from(workspace, hf_folders, variant, tmp_path):
    original = read_export(workspace / variant)
    assert_same_export(checked_export(run_config(workspace, variant, hf_folders[variant]), original.vocab), original)
    # saved again by Hugging Face's own tools, as a model edited or trained there is
    resaved = tmp_path / "resaved"
    transformers.AutoModelForCausalLM.from_pretrained(hf_folders[variant]).save_pretrained(resaved)
    transformers.AutoTokenizer.from_pretrained(hf_folders[variant]).save_pretrained(resaved)
    assert_same_export(checked_export(run_config(workspace, variant, resaved, corpus=False), None), original)


def test_the_evaluate_phase_reads_a_hugging_face_folder(workspace, hf_folders, tmp_path):
    overrides = [f"init_from={hf_folders['rope']}", f"run_dir={tmp_path / 'run'}", "model.variant=rope",
                 f"eval.questions={workspace / 'questions.tsv'}", "model.n_layer=2", "model.n_head=4",
                 "model.n_embd=32", "data.block_size=64"]
    check(launch([str(CONFIGS / "evaluate.yaml")], overrides, launcher="python"))
    assert predictions_file(tmp_path / "run") == [p.replace("\n", " ") for p in spangpt_predictions(workspace / "rope")]


def test_the_finetune_phase_starts_from_a_hugging_face_folder(workspace, hf_folders, tmp_path):
    """The folder's spangpt entry carries the pretraining document count into the finetune's own export."""
    overrides = [f"init_from={hf_folders['vanilla']}", f"run_dir={tmp_path / 'run'}", "data.corpus=null",
                 f"data.finetune={workspace / 'questions.tsv'}", f"eval.questions={workspace / 'questions.tsv'}",
                 "model.n_layer=2", "model.n_head=4", "model.n_embd=32", "data.block_size=64", "train.max_steps=1",
                 "train.global_batch_size=2"]
    check(launch([str(CONFIGS / "finetune.yaml")], overrides, launcher="python"))
    assert read_export(tmp_path / "run" / "export").pretraining_documents == 4
    assert len(predictions_file(tmp_path / "run")) == len(QUESTIONS)


@pytest.mark.parametrize("variant", ["perceiver", "synthesizer"])
def test_variants_without_a_hugging_face_class_are_refused(workspace, variant, tmp_path, capsys):
    out = tmp_path / "hf"
    assert convert.main([str(workspace / variant), "--to", "hf", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {workspace / variant}: variant {variant} has no Hugging Face class (GPT-2 covers vanilla, "
        "GPT-NeoX covers rope); export it with --to course"]
    assert list(tmp_path.iterdir()) == []


def test_every_convert_error_is_one_line(workspace, tmp_path, capsys):
    def error(*args: str) -> str:
        with pytest.raises(SystemExit) as stop:
            raise SystemExit(convert.main(list(args)))
        assert stop.value.code == 2
        [line] = capsys.readouterr().err.splitlines()
        return line

    assert error(str(tmp_path / "none"), "--to", "hf", str(tmp_path / "out")) == (
        f"error: {tmp_path / 'none' / 'model.safetensors'}: not found (EXPORT must be a spangpt export directory: "
        "model.safetensors, vocab.json, model.json)")
    assert error(str(workspace / "vanilla"), "--to", "gguf", str(tmp_path / "out")).startswith(
        "error: argument --to: invalid choice: 'gguf'")
    assert error(str(workspace / "vanilla"), str(tmp_path / "out")) == (
        "error: the following arguments are required: --to (usage: python -m launcher.convert EXPORT --to "
        "{hf,course} OUT)")
    taken = tmp_path / "taken.params"
    taken.write_text("someone's file")
    assert error(str(workspace / "vanilla"), "--to", "course", str(taken)) == (
        f"error: {taken}: already exists (pass --force to replace it)")
    assert taken.read_text() == "someone's file"
    assert convert.main([str(workspace / "vanilla"), "--to", "course", str(taken), "--force"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.params"]  # no temporary file left beside it

    damaged = tmp_path / "damaged"  # an export whose weights lack a tensor its model.json needs
    shutil.copytree(workspace / "vanilla", damaged)
    weights = load_file(damaged / "model.safetensors")
    del weights["ln_f.weight"]
    save_file(weights, damaged / "model.safetensors")
    assert error(str(damaged), "--to", "course", str(tmp_path / "d.params")) == (
        f"error: {damaged / 'model.safetensors'}: has no ln_f.weight, which model.json's vanilla model needs")
    assert not (tmp_path / "d.params").exists()
    file_in_the_way = tmp_path / "file"  # --force over a file with a folder: replaced, nothing left beside it
    file_in_the_way.write_text("x")
    assert convert.main([str(workspace / "vanilla"), "--to", "hf", str(file_in_the_way), "--force"]) == 0
    assert (file_in_the_way / "config.json").is_file() and not list(tmp_path.glob(".file.tmp-*"))


def test_a_foreign_hugging_face_folder_names_what_it_lacks(workspace, hf_folders, tmp_path):
    folder = tmp_path / "foreign"
    shutil.copytree(hf_folders["vanilla"], folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    del config["spangpt"]
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        checked_export(run_config(workspace, "vanilla", folder, corpus=False), None)
    assert str(error.value) == (
        f"init_from: {folder / 'config.json'} has no spangpt.pretraining_documents (the pretraining corpus's document "
        'count, which ends the learning-rate decay): set data.corpus to that corpus, or add "spangpt": '
        '{"pretraining_documents": N} to it')
    assert checked_export(run_config(workspace, "vanilla", folder), None).pretraining_documents == len(QUESTIONS) + 3
    assert checked_export(run_config(workspace, "vanilla", folder, corpus=False, phase="evaluate"), None)
    (folder / "config.json").write_text(json.dumps({**config, "activation_function": "gelu_new"}), encoding="utf-8")
    with pytest.raises(DataError) as error:
        checked_export(run_config(workspace, "vanilla", folder, phase="evaluate"), None)
    assert str(error.value) == (f"{folder / 'config.json'}: activation_function is 'gelu_new', but spangpt's model "
                                "needs 'gelu' (spangpt's MLP uses the exact erf GELU)")
    with pytest.raises(ConfigError) as error:
        checked_export(run_config(workspace, "vanilla", hf_folders["vanilla"], "model.n_layer=3"), None)
    assert str(error.value) == f"init_from: {hf_folders['vanilla']} has n_layer=2 but model.n_layer is 3"


# --- the course's format -----------------------------------------------------------------------------


def course_model(variant: str, vocab_size: int) -> course_reference.GPT:
    flags = {"perceiver": variant == "perceiver", "rope": variant == "rope", "synthesizer": variant == "synthesizer"}
    shape = {k: v for k, v in SHAPE.items() if k != "block_size"}
    return course_reference.GPT(course_reference.GPTConfig(vocab_size, SHAPE["block_size"], **shape, **flags)).eval()


@pytest.fixture(scope="module")
def course_files(workspace) -> dict[str, Path]:
    files = {}
    for variant in VARIANTS:
        files[variant] = workspace / f"{variant}.params"
        assert convert.main([str(workspace / variant), "--to", "course", str(files[variant])]) == 0
    return files


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_course_loads_a_converted_model_strictly_and_computes_its_logits(workspace, course_files, variant):
    export = read_export(workspace / variant)
    reference = course_model(variant, len(export.vocab))
    registered = {k: v.clone() for k, v in reference.state_dict().items() if k.endswith((".mask", ".rope_cache"))}
    state = torch.load(course_files[variant], weights_only=True)
    reference.load_state_dict(state, strict=True)
    for name, value in registered.items():  # the buffers the course registers, with its values
        torch.testing.assert_close(state[name], value, atol=1e-5, rtol=0)
        assert torch.equal(state[name], value) or name.endswith(".rope_cache")  # spangpt's cache: float64-derived
    if variant == "perceiver":
        return  # the course leaves the perceiver's forward to the student
    ids = torch.tensor([export.vocab.encode(CORPUS[:63]).tolist()])
    with torch.no_grad():
        torch.testing.assert_close(reference(ids), spangpt_model(workspace / variant)(ids)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_course_file_comes_back_exactly_through_init_from(workspace, course_files, variant):
    original = read_export(workspace / variant)
    found = checked_export(run_config(workspace, variant, course_files[variant]), None)
    original.pretraining_documents = len(QUESTIONS) + 3  # the course file has none: the corpus's count
    assert_same_export(found, original)


def test_the_evaluate_phase_reads_a_course_file(workspace, course_files, tmp_path):
    overrides = [f"init_from={course_files['vanilla']}", f"data.corpus={workspace / 'corpus.txt'}",
                 f"run_dir={tmp_path / 'run'}", f"eval.questions={workspace / 'questions.tsv'}", "model.n_layer=2",
                 "model.n_head=4", "model.n_embd=32", "data.block_size=64"]
    check(launch([str(CONFIGS / "evaluate.yaml")], overrides, launcher="python"))
    expected = spangpt_predictions(workspace / "vanilla")
    assert predictions_file(tmp_path / "run") == [p.replace("\n", " ") for p in expected]


def course_error(workspace: Path, variant: str, path: Path, *extra: str, corpus: bool = True) -> str:
    with pytest.raises((ConfigError, DataError)) as error:
        checked_export(run_config(workspace, variant, path, *extra, corpus=corpus), None)
    return str(error.value)


def test_every_mismatch_with_a_course_file_is_one_line_naming_the_key(workspace, course_files, tmp_path):
    vanilla, rope, synthesizer, perceiver = (course_files[v] for v in ("vanilla", "rope", "synthesizer", "perceiver"))
    assert course_error(workspace, "vanilla", vanilla, corpus=False) == (
        f"data.corpus: required with a course checkpoint as init_from ({vanilla} holds no vocabulary: the course "
        "rebuilds it from the pretraining corpus)")
    assert course_error(workspace, "vanilla", vanilla, "model.n_embd=16") == (
        f"init_from: {vanilla} has n_embd 32 (tok_emb.weight 32 wide) but model.n_embd is 16")
    assert course_error(workspace, "rope", vanilla) == (
        f"init_from: {vanilla} has variant vanilla (pos_emb and key/query/value attention) but model.variant is rope")
    assert course_error(workspace, "vanilla", perceiver) == (
        f"init_from: {perceiver} has variant perceiver (down_block.C) but model.variant is vanilla")
    assert course_error(workspace, "vanilla", vanilla, "model.n_layer=3") == (
        f"init_from: {vanilla} has n_layer 2 (blocks.0-1) but model.n_layer is 3")
    assert course_error(workspace, "vanilla", vanilla, "data.block_size=32") == (
        f"init_from: {vanilla} has block_size 64 (pos_emb 64 long) but data.block_size is 32")
    assert course_error(workspace, "rope", rope, "data.block_size=32") == (
        f"init_from: {rope} has block_size 64 (blocks.0.attn.rope_cache 64 positions) but data.block_size is 32")
    assert course_error(workspace, "synthesizer", synthesizer, "model.n_head=2") == (
        f"init_from: {synthesizer} has n_head 4 (blocks.0.attn.w2: head size 8) but model.n_head is 2")
    assert course_error(workspace, "perceiver", perceiver, "model.bottleneck_dim=4") == (
        f"init_from: {perceiver} has bottleneck_dim 8 (down_block.C 8 long) but model.bottleneck_dim is 4")
    assert course_error(workspace, "rope", rope, "model.rope_base=500") == (
        f"init_from: {rope} has a rope_cache (blocks.0.attn.rope_cache) of another rotation base than "
        "model.rope_base 500.0")
    other = tmp_path / "other.txt"
    other.write_text("abc\n", encoding="utf-8")
    assert course_error(workspace, "vanilla", vanilla, f"data.corpus={other}") == (
        f"init_from: {vanilla} has {len(Vocabulary.from_text(CORPUS))} token ids (tok_emb.weight) but data.corpus's "
        "vocabulary has 6 (PAD, MASK and its distinct characters): use the corpus the model was pretrained on")


def test_the_courses_vocabulary_of_the_real_corpus_is_spangpts(real_data):
    """The course's CharCorruptionDataset: PAD, MASK, then sorted(set(the whole corpus file))."""
    course = [PAD, MASK, *sorted(set((real_data / "wiki.txt").read_text(encoding="utf-8")))]
    assert open_corpus(real_data / "wiki.txt")[1].itos == course
    assert len(course) == 256  # SPEC's vocabulary, and the course's "256 unique"


def test_an_init_from_that_does_not_exist_is_named(workspace, tmp_path):
    assert course_error(workspace, "vanilla", tmp_path / "typo.params") == (
        f"init_from: {tmp_path / 'typo.params'} not found (an export directory, a Hugging Face folder or a course "
        ".params file)")


def test_a_damaged_course_file_is_one_line_naming_it(workspace, course_files, tmp_path):
    damaged = tmp_path / "damaged.params"
    state = torch.load(course_files["vanilla"], weights_only=True)
    del state["blocks.1.mlp.2.bias"]
    torch.save(state, damaged)
    assert course_error(workspace, "vanilla", damaged) == (
        f"{damaged}: has no blocks.1.mlp.2.bias, which the course's vanilla GPT of this config needs")
    torch.save([1, 2, 3], damaged)
    assert course_error(workspace, "vanilla", damaged) == (
        f"{damaged}: not a state dict (a mapping of names to tensors) the course's run.py saves")
    damaged.write_bytes(b"not a pickle at all")
    line = course_error(workspace, "vanilla", damaged)
    assert line.startswith(f"{damaged}: not a state dict the course's run.py saves (") and "\n" not in line


def test_greedy_generation_gives_spangpts_predictions_on_the_real_dev_file(real_data, tmp_path):
    """The real vocabulary and dev questions (the first 100 of birth_dev.tsv), a SPEC-length context: Hugging Face's
    greedy `generate` on the converted GPT-2 gives the evaluation's predictions, question by question."""
    from data.birthplaces import read_questions

    _, vocab = open_corpus(real_data / "wiki.txt")
    questions = [q.text for q in read_questions(real_data / "birth_dev.tsv", require_answers=True)[:100]]
    torch.manual_seed(0)
    config = small_config("vanilla", vocab_size=len(vocab), n_layer=2, n_head=4, n_embd=32, block_size=128)
    write_export(tmp_path / "export", sharpened(GPT(config), 0).state_dict(), config, vocab, 4)
    result = run_module("launcher.convert", str(tmp_path / "export"), "--to", "hf", str(tmp_path / "hf"))
    assert result.returncode == 0, result.stderr
    ours = predict_shard(spangpt_model(tmp_path / "export"), vocab, questions, batch_size=50, max_new_tokens=32)
    assert hf_greedy_predictions(tmp_path / "hf", questions) == ours

"""`python -m launcher.convert EXPORT --to hf|course OUT`: a spangpt export in a format people load elsewhere.

    python -m launcher.convert runs/vanilla/finetune/export --to hf hf/vanilla        # GPT2LMHeadModel folder
    python -m launcher.convert runs/rope/finetune/export --to hf hf/rope              # GPTNeoXForCausalLM folder
    python -m launcher.convert runs/perceiver/pretrain/export --to course perceiver.params

EXPORT is an export directory (model.safetensors, vocab.json, model.json). Formats and what maps to
what: launcher/formats.py and docs/convert.md; init_from reads both back. OUT is written under a
temporary name beside it and renamed when complete, so a failure leaves nothing. Every problem is
one `error:` line naming the file; bad input or usage exits 2, an output that cannot be written 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.errors import DataError
from launcher.export import MODEL, VOCAB, WEIGHTS, check_tensors, expected_shapes, read_export
from launcher.formats import FORMATS

PROG = "python -m launcher.convert"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"error: {message} (usage: {PROG} EXPORT --to {{{','.join(writable())}}} OUT)", file=sys.stderr)
        raise SystemExit(2)


def writable() -> list[str]:
    return [name for name, f in FORMATS.items() if f.write is not None]


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("export", help="a spangpt export directory (model.safetensors, vocab.json, model.json)")
    parser.add_argument("--to", required=True, choices=writable(),
                        help="; ".join(f"{name}: {FORMATS[name].description}" for name in writable()))
    parser.add_argument("out", help="the folder (hf) or file (course) to write")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    target = FORMATS[args.to]
    missing = [name for name in (WEIGHTS, VOCAB, MODEL) if not (Path(args.export) / name).is_file()]
    if missing:
        print(f"error: {Path(args.export) / missing[0]}: not found (EXPORT must be a spangpt export directory: "
              f"{', '.join((WEIGHTS, VOCAB, MODEL))})", file=sys.stderr)
        return 2
    try:
        export = read_export(Path(args.export))
        check_tensors(export.state_dict, expected_shapes(export.model_config), str(Path(args.export) / WEIGHTS),
                      f"model.json's {export.model_config.variant} model")  # a damaged export: one line, not a KeyError
        target.write(export, Path(args.out), args.export, args.force)
    except (DataError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # tokenizers, which --to hf builds the tokenizer with
        print(f"error: --to {args.to} needs the {exc.name} package (pip install {exc.name})", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    config = export.model_config
    print(f"{args.out}: {config.variant} model ({config.n_layer} layers, n_embd {config.n_embd}, "
          f"{len(export.vocab)} ids) as {target.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

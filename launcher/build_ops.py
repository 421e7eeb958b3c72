"""`python -m launcher.build_ops`: build DeepSpeed's JIT ops once, into the environment.

On CPUs, DeepSpeed compiles a shared-memory collective op at every start unless a build exists in
TORCH_EXTENSIONS_DIR (about a minute on 2 cores). `make setup` runs this so no job pays for it;
the launcher points TORCH_EXTENSIONS_DIR at the same folder inside the virtual environment.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    import torch

    if torch.cuda.is_available():
        return 0  # GPU nodes use NCCL; the CPU collective op is not needed
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is not None and builder.is_compatible():
        builder.load(verbose=False)
        print(f"built {builder.absolute_name()} in {os.environ['TORCH_EXTENSIONS_DIR']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

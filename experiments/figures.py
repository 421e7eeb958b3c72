"""Loss-curve PNGs for the report: one colour per variant, one line per seed.

A variant's colour is its position in the variant registry on matplotlib's tab10 cycle, so every
figure of every sweep gives a variant the same colour, and a newly registered variant gets one
without an edit here.
"""

from __future__ import annotations

import io

from experiments.grid import variant_names
from experiments.runs import Sweep

PANELS = {"finetune": "finetuning the pretrained model",
          "finetune_scratch": "finetuning from random weights (no pretraining)"}


def variant_colour(variant: str) -> tuple[float, float, float, float]:
    """tab10 by registry position (vanilla blue, synthesizer orange, ...); an unregistered variant after them."""
    from matplotlib import colormaps

    registered = variant_names()
    index = registered.index(variant) if variant in registered else len(registered)
    return colormaps["tab10"](index % 10)


def loss_figure(sweep: Sweep, phase_configs: list[str], titles: list[str]) -> bytes:
    """Training loss against optimizer step, one panel per phase config, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(phase_configs), figsize=(6.4 * len(phase_configs), 4.2), squeeze=False)
    for axis, phase_config, title in zip(axes[0], phase_configs, titles):
        for variant in sweep.variants:
            colour = variant_colour(variant)
            for i, seed in enumerate(sweep.seeds):
                steps, values = zip(*sweep.runs[(variant, seed, phase_config)].loss)
                axis.plot(steps, values, color=colour, alpha=0.8, linewidth=1.0, label=variant if i == 0 else None)
        axis.set_title(title)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("training loss (cross-entropy, nats)")
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.2g"))
        # Minor ticks at 2, 3 and 5 only: labelling every one crowds a decade into a smear.
        axis.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 3.0, 5.0)))
        axis.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%.2g"))
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(title=f"seeds {', '.join(map(str, sweep.seeds))}")
    fig.suptitle(sweep.manifest.get("label") or sweep.slug)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def loss_figures(sweep: Sweep, figures_link: str) -> tuple[list[str], dict[str, bytes]]:
    """The pretraining figure and the finetuning figure (pretrained and from scratch side by side):
    the Markdown image lines, and the PNGs by file name."""
    lines: list[str] = []
    figures: dict[str, bytes] = {}
    phases = {p for _, _, p in sweep.runs}
    panels = [(p, t) for p, t in PANELS.items() if p in phases]
    if "pretrain" in phases:
        figures[f"{sweep.slug}-pretrain.png"] = loss_figure(sweep, ["pretrain"], ["span-corruption pretraining"])
    if panels:
        figures[f"{sweep.slug}-finetune.png"] = loss_figure(sweep, [p for p, _ in panels], [t for _, t in panels])
    for name in figures:
        lines += [f"![{name.removesuffix('.png').replace('-', ' ')} loss]({figures_link}/{name})", ""]
    return lines, figures

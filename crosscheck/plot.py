"""Pictures of a crosscheck: per-layer relative error on a log scale, one line per
framework, forward and backward, so a divergence is seen at a glance."""

from __future__ import annotations

import io
import math
from pathlib import Path

from common.weights import atomic_write_bytes
from crosscheck.run import CrosscheckRun, VariantRun

#: Where an infinite error (a shape mismatch, NaN) is drawn.
CEILING = 10.0


def _finite(value: float) -> float:
    return CEILING if not math.isfinite(value) else max(value, 1e-12)


def _worst_per_layer(rows, layers: list[str], grads_only: bool) -> list[float]:
    return [_finite(max((r.error.rel_l2 for r in rows if r.layer == layer
                         and (not grads_only or r.what != "out")), default=1e-12))
            for layer in layers]


def variant_figure(v: VariantRun, run: CrosscheckRun) -> bytes:
    """A PNG of one variant: forward errors, and (if run) backward errors."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = [f for f in v.frameworks if f.layers]
    panels = 1 + bool(v.gradients) + bool(v.training)
    fig, axes = plt.subplots(panels, 1, figsize=(11, 3.6 * panels), squeeze=False)
    layers = [layer.name for layer in ran[0].layers] if ran else []
    ax = axes[0][0]
    for f in ran:
        ax.semilogy(layers, [_finite(layer.error.rel_l2) for layer in f.layers], marker="o", label=f.framework)
    ax.axhline(run.tolerances.rel_l2, color="red", linestyle="--", label="tolerance")
    ax.set_title(f"{v.variant}: forward, relative L2 error against float64")
    if v.gradients:
        bx = axes[1][0]
        for g in v.gradients:
            bx.semilogy(layers, _worst_per_layer(g.end_to_end, layers, True), marker="o",
                        label=f"{g.framework} end to end")
            bx.semilogy(layers, _worst_per_layer(g.isolated, layers, False), marker="x",
                        linestyle=":", label=f"{g.framework} layer-isolated")
        bx.axhline(1e-5, color="red", linestyle="--", label="isolated tolerance")
        bx.axhline(2e-2, color="darkred", linestyle="-.", label="end-to-end gradient tolerance")
        bx.set_title(f"{v.variant}: backward, worst gradient error per layer")
    if v.training:
        tx = axes[-1][0]
        for t in v.training:
            steps = range(1, len(t.rel_errors) + 1)
            tx.semilogy(steps, [_finite(e) for e in t.rel_errors], marker="o" if t.workers == 1 else "x",
                        label=t.framework + (f" x{t.workers} workers" if t.workers > 1 else ""))
        tx.semilogy(range(1, len(v.training[0].tolerances) + 1), v.training[0].tolerances,
                    color="red", linestyle="--", drawstyle="steps-mid", label="tolerance")
        tx.set_title(f"{v.variant}: training, relative loss difference from float64 per step")
        tx.set_xlabel("step")
        tx.xaxis.get_major_locator().set_params(integer=True)
    for row in axes:
        row[0].set_ylim(1e-9, CEILING * 2)
        row[0].tick_params(axis="x", rotation=60, labelsize=8)
        row[0].grid(True, which="major", alpha=0.3)
        row[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def write_plots(run: CrosscheckRun, directory: Path, *, overwrite: bool) -> list[Path]:
    """One ``errors-<variant>.png`` per variant, written atomically; a variant's run at
    another input size than the first is ``errors-<variant>-<CxHxW>.png``."""
    paths = []
    seen: set[str] = set()
    for v in run.variants:
        if any(f.layers for f in v.frameworks):
            name = v.variant if v.variant not in seen else f"{v.variant}-{'x'.join(map(str, v.input_shape))}"
            seen.add(v.variant)
            path = directory / f"errors-{name}.png"
            atomic_write_bytes(path, variant_figure(v, run), overwrite=overwrite)
            paths.append(path)
    return paths

"""Pictures as PNG files (matplotlib, Agg backend; no screen needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.patches
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 100
TITLE_POINTS = 10
MARGIN = 4  # PNG pixels around the title


def tile(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """(rows*cols, H, W[, C]) images in [0, 1] -> one (rows*(H+pad)+pad, cols*(W+pad)+pad[, C]) mosaic
    on white (grey (H, W) or (H, W, 1), or colour (H, W, 3))."""
    images = np.asarray(images)[: rows * cols]
    n, h, w = images.shape[:3]
    extra = images.shape[3:]
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, *extra), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    return grid


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """An (H, W), (H, W, 1) or (H, W, 3) image in [0, 1] -> uint8 (H, W, 3): clipped to [0, 1]
    (NaN as 0), round(255 x), grey repeated into the three channels."""
    image = np.nan_to_num(np.asarray(image, np.float32))
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a grey (H, W[, 1]) or colour (H, W, 3) image, got shape {image.shape}")
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _show(path: Path, image: np.ndarray, title: str, size: float, scale: int | None = None) -> None:
    """``image`` drawn pixel for pixel, each image pixel a ``scale`` x ``scale`` block of PNG pixels
    (None: the whole number that makes it about ``size`` inches wide at 100 dpi), the title above.

    The PNG is max(W * scale, title width) x (H * scale + title band) pixels, the image centred
    at its bottom; drawn with ``figimage``, so no resampling blurs or unevens the pixels.
    """
    rgb = to_rgb8(image)
    h, w = rgb.shape[:2]
    scale = scale or max(1, round(size * DPI / w))
    pixels = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    fig = plt.figure(dpi=DPI)
    text = fig.text(0.5, 1.0, title, ha="center", va="top", fontsize=TITLE_POINTS)
    box = text.get_window_extent(renderer=fig.canvas.get_renderer())
    width = max(w * scale, int(np.ceil(box.width)) + 2 * MARGIN)
    height = h * scale + int(np.ceil(box.height)) + 2 * MARGIN
    fig.set_size_inches(width / DPI, height / DPI)
    text.set_y(1.0 - MARGIN / height)
    fig.figimage(pixels, xo=(width - w * scale) // 2, yo=0, origin="upper")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def save_grid(path: Path, images: np.ndarray, rows: int, cols: int, title: str, scale: int | None = None) -> None:
    """A rows x cols grid of grey (N, H, W[, 1]) or colour (N, H, W, 3) images in [0, 1], e.g. 8x8
    prior samples; ``scale`` PNG pixels per image pixel (None: about 0.8 inch a column)."""
    _show(path, tile(images, rows, cols), title, size=0.8 * cols, scale=scale)


def save_labelled_rows(path: Path, rows: Sequence[tuple[str, np.ndarray]], title: str, scale: int = 2) -> None:
    """One row of images per (label, (n, H, W[, C]) images in [0, 1]), the label at the row's left,
    the title above; pixel for pixel as :func:`save_grid` (``scale`` PNG pixels per image pixel)."""
    strips = [tile(images, 1, len(images)) for _, images in rows]
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(to_rgb8(s), ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    mosaic = np.concatenate(strips)
    h, w = mosaic.shape[:2]
    pixels = np.repeat(np.repeat(mosaic, scale, axis=0), scale, axis=1)
    fig = plt.figure(dpi=DPI)
    text = fig.text(0.5, 1.0, title, ha="center", va="top", fontsize=TITLE_POINTS)
    renderer = fig.canvas.get_renderer()
    band = int(np.ceil(text.get_window_extent(renderer=renderer).height)) + 2 * MARGIN
    label_width = 3 * MARGIN + max(int(np.ceil(fig.text(0, 0, label, fontsize=TITLE_POINTS).get_window_extent(
        renderer=renderer).width)) for label, _ in rows)
    for t in fig.texts[1:]:
        t.remove()
    total_w, total_h = label_width + w * scale, h * scale + band
    fig.set_size_inches(total_w / DPI, total_h / DPI)
    text.set_y(1.0 - MARGIN / total_h)
    fig.figimage(pixels, xo=label_width, yo=0, origin="upper")
    top = 0
    for (label, _), strip in zip(rows, strips):
        centre = top + strip.shape[0] * scale / 2
        fig.text((label_width - MARGIN) / total_w, 1.0 - (band + centre) / total_h, label, ha="right", va="center",
                 fontsize=TITLE_POINTS)
        top += strip.shape[0] * scale
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def save_reconstructions(
    path: Path, originals: np.ndarray, reconstructions: np.ndarray, title: str, scale: int | None = None
) -> None:
    """Originals in the top row, their reconstructions beneath (grey or colour, as :func:`save_grid`)."""
    n = len(originals)
    both = np.concatenate([originals, reconstructions])
    _show(path, tile(both, 2, n), title, size=0.8 * n, scale=scale)


def save_curves(path: Path, epochs: Sequence[int], curves: dict[str, Sequence[float]], ylabel: str, title: str) -> None:
    """One line per named curve against the epoch (integer ticks)."""
    save_lines(path, epochs, curves, "epoch", ylabel, title, integer_x=True)


def save_latent_scatter(path: Path, z: np.ndarray, labels: np.ndarray, title: str,
                        circles: Sequence[float] = ()) -> None:
    """2-D latent means coloured by class label; ``circles``: radii of dashed circles about 0
    (e.g. 1 and 2: where N(0, I) puts 39% and 86% of its draws)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.6)
    for r in circles:
        ax.add_patch(matplotlib.patches.Circle((0, 0), r, fill=False, ls="--", lw=1, color="k"))
    if circles:
        ax.set_aspect("equal", adjustable="datalim")
    fig.colorbar(points, ax=ax, ticks=range(10))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def manifold_grid(n: int = 20, extent: float = 3.0) -> np.ndarray:
    """(n*n, 2) latent points on a regular grid over [-extent, extent]^2, top row = largest z[1]."""
    xs = np.linspace(-extent, extent, n)
    ys = xs[::-1]
    return np.array([[x, y] for y in ys for x in xs], np.float32)


def save_lines(path: Path, xs: Sequence[float], curves: dict[str, Sequence[float]], xlabel: str, ylabel: str,
               title: str, log_x: bool = False, integer_x: bool = False) -> None:
    """One line per named curve against any x (e.g. the latent size of a study); ``None``
    values are gaps; ``integer_x``: integer ticks only (epochs)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(xs, [np.nan if v is None else v for v in values], marker="o", label=name)
    if log_x:
        ax.set_xscale("log")
        ax.set_xticks(list(xs), [str(x) for x in xs])
    if integer_x:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_histogram_grid(path: Path, panels: Sequence[tuple[str, dict[str, np.ndarray]]], cols: int, xlabel: str,
                        title: str, bins: int = 50, log_x: bool = False) -> None:
    """One small histogram panel per (panel title, {name: values}), ``cols`` to a row; each
    panel's groups share its bins and are normalized to densities (e.g. a detector's scores
    of normal and anomalous test images)."""
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    for ax, (name, groups) in zip(axes.flat, panels):
        values = np.concatenate([np.asarray(v, np.float64).ravel() for v in groups.values()])
        edges = (np.geomspace(values.min(), values.max(), bins + 1) if log_x and values.min() > 0
                 else np.linspace(values.min(), values.max(), bins + 1))
        for label, v in groups.items():
            ax.hist(np.asarray(v).ravel(), bins=edges, density=True, histtype="stepfilled", alpha=0.5, label=label)
        if log_x and values.min() > 0:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel(xlabel, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

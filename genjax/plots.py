"""Pictures as PNG files (matplotlib, Agg backend; no screen needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def tile(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """(rows*cols, H, W[, C]) images in [0, 1] -> one (rows*(H+pad), cols*(W+pad)[, C]) mosaic."""
    images = np.asarray(images)[: rows * cols]
    n, h, w = images.shape[:3]
    extra = images.shape[3:]
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, *extra), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    return grid


def _show(path: Path, image: np.ndarray, title: str, size: float) -> None:
    fig, ax = plt.subplots(figsize=(size, size * image.shape[0] / image.shape[1]))
    ax.imshow(np.squeeze(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_grid(path: Path, images: np.ndarray, rows: int, cols: int, title: str) -> None:
    """A rows x cols grid of images, e.g. 8x8 prior samples."""
    _show(path, tile(images, rows, cols), title, size=0.8 * cols)


def save_reconstructions(path: Path, originals: np.ndarray, reconstructions: np.ndarray, title: str) -> None:
    """Originals in the top row, their reconstructions beneath."""
    n = len(originals)
    both = np.concatenate([originals, reconstructions])
    _show(path, tile(both, 2, n), title, size=0.8 * n)


def save_curves(path: Path, epochs: Sequence[int], curves: dict[str, Sequence[float]], ylabel: str, title: str) -> None:
    """One line per named curve against the epoch."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(epochs, values, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_latent_scatter(path: Path, z: np.ndarray, labels: np.ndarray, title: str) -> None:
    """2-D latent means coloured by class label."""
    fig, ax = plt.subplots(figsize=(7, 6))
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.6)
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

"""genjax.evaluation.plots: grids and reconstructions of grey and colour images, pixel for pixel."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from genjax.evaluation import plots


def _png(path) -> np.ndarray:
    """The PNG's RGB bytes, (height, width, 3) uint8."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return np.round(matplotlib.image.imread(path)[..., :3] * 255).astype(np.uint8)


def test_colour_grid_png_has_the_mosaic_pixel_for_pixel(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((6, 16, 16, 3)).astype(np.float32)
    mosaic = plots.tile(images, 2, 3)
    assert mosaic.shape == (2 * 17 + 1, 3 * 17 + 1, 3)
    plots.save_grid(tmp_path / "grid.png", images, 2, 3, "c", scale=3)
    png = _png(tmp_path / "grid.png")
    assert png.shape[1] == 52 * 3 and png.shape[0] > 35 * 3  # the image, and a title band above it
    expected = np.repeat(np.repeat(plots.to_rgb8(mosaic), 3, axis=0), 3, axis=1)
    np.testing.assert_array_equal(png[-35 * 3 :], expected)  # each pixel a 3x3 block, colours kept
    assert np.any(png[..., 0] != png[..., 1])  # colour, not grey
    # The default scale: the whole number nearest 0.8 inch (80 PNG pixels) a column.
    plots.save_grid(tmp_path / "default.png", images, 2, 3, "c")
    assert _png(tmp_path / "default.png").shape[1] == 52 * round(240 / 52)


def test_grey_grids_as_before(tmp_path):
    images = np.random.default_rng(1).random((4, 28, 28)).astype(np.float32)
    plots.save_grid(tmp_path / "a.png", images, 2, 2, "grey", scale=2)
    plots.save_grid(tmp_path / "b.png", images[..., None], 2, 2, "grey", scale=2)
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png")
    np.testing.assert_array_equal(a, b)  # (N, H, W) and (N, H, W, 1) draw the same
    assert a.shape[1] == (2 * 29 + 1) * 2
    assert np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2])


def test_colour_reconstructions_and_a_wide_title(tmp_path):
    rng = np.random.default_rng(2)
    originals, recon = rng.random((2, 5, 8, 8, 3)).astype(np.float32)
    plots.save_reconstructions(tmp_path / "r.png", originals, recon, "r", scale=4)
    png = _png(tmp_path / "r.png")
    assert png.shape[1] == (5 * 9 + 1) * 4
    np.testing.assert_array_equal(png[-19 * 4 :: 4, ::4], plots.to_rgb8(plots.tile(np.concatenate([originals, recon]), 2, 5)))
    title = "a title much wider than the two small images beneath it"
    plots.save_grid(tmp_path / "w.png", originals[:2], 1, 2, title, scale=1)
    wide = _png(tmp_path / "w.png")
    assert wide.shape[1] > 2 * 9 + 1  # widened for the title, the image centred at the bottom
    left = (wide.shape[1] - 19) // 2
    np.testing.assert_array_equal(wide[-10:, left : left + 19], plots.to_rgb8(plots.tile(originals[:2], 1, 2)))


def test_to_rgb8_clips_and_rejects_other_channel_counts():
    image = np.array([[-0.5, 0.0, 0.5, 1.0, 2.0, np.nan]], np.float32)
    np.testing.assert_array_equal(plots.to_rgb8(image)[..., 0], [[0, 0, 128, 255, 255, 0]])
    assert plots.to_rgb8(image).shape == (1, 6, 3)
    with pytest.raises(ValueError, match="colour"):
        plots.to_rgb8(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError):
        plots.save_grid("unused.png", np.zeros((4, 4, 4, 2)), 2, 2, "two channels")

"""Per-image preprocessing at load time: a centred square crop, then a resize.

Both act on one uint8 (H, W, C) image and return a new one, so the loader can
apply them record by record while it fills a preallocated array. They follow
torchvision's ``CenterCrop(c)`` and ``Resize(s)`` on PIL images exactly (the
same offset rounding, the same PIL bilinear filter with antialiasing), so a
PyTorch recipe such as ``Compose([CenterCrop(148), Resize(64)])`` reads here as
``Preprocess(crop=148, size=64)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from genjax.errors import UsageError


def center_crop(image: np.ndarray, side: int) -> np.ndarray:
    r"""The centred ``side`` x ``side`` window of an (H, W, C) image: rows
    [t, t + side) and columns [l, l + side) with t = round((H - side) / 2),
    l = round((W - side) / 2), torchvision's ``CenterCrop`` offsets."""
    h, w = image.shape[:2]
    if side > min(h, w):
        raise UsageError(f"cannot crop a {side}x{side} square from a {h}x{w} image")
    top, left = round((h - side) / 2.0), round((w - side) / 2.0)
    return image[top : top + side, left : left + side]


def resized_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(H', W') with the shorter side ``size`` and the aspect ratio kept (torchvision's
    ``Resize(int)``: the longer side is truncated, int(size * long / short))."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """An (H, W, C) uint8 image resized so its shorter side is ``size``: PIL's bilinear
    filter, whose support widens with the scale factor when shrinking (antialiased:
    each output pixel is a triangle-weighted mean of the input pixels it covers)."""
    from PIL import Image  # pillow: a dependency of matplotlib

    h, w, c = image.shape
    out_h, out_w = resized_shape(h, w, size)
    if (out_h, out_w) == (h, w):
        return image
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    out = np.asarray(pil.resize((out_w, out_h), Image.BILINEAR))
    return out.reshape(out_h, out_w, c)


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """What to do to each image as it is decoded: a centred ``crop`` x ``crop`` square
    (None: no crop), then a resize to shorter side ``size`` (None: no resize).

    ``Preprocess()`` keeps the images as stored. Being frozen and hashable, it is
    also part of the decoded-array cache's key (:attr:`tag`).
    """

    crop: int | None = None
    size: int | None = None

    def __post_init__(self):
        for field in ("crop", "size"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UsageError(f"preprocess {field} must be a positive integer or None, not {value!r}")

    @property
    def tag(self) -> str:
        """'' for no preprocessing, else e.g. 'crop148-size64' (for cache file names)."""
        parts = [f"crop{self.crop}"] if self.crop else []
        parts += [f"size{self.size}"] if self.size else []
        return "-".join(parts)

    def output_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The (H, W, C) an image of ``shape`` has after preprocessing."""
        h, w, c = shape
        if self.crop:
            if self.crop > min(h, w):
                raise UsageError(f"cannot crop a {self.crop}x{self.crop} square from {h}x{w} images")
            h = w = self.crop
        if self.size:
            h, w = resized_shape(h, w, self.size)
        return h, w, c

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """One uint8 (H, W, C) image, cropped then resized."""
        if self.crop:
            image = center_crop(image, self.crop)
        if self.size:
            image = resize(np.ascontiguousarray(image), self.size)
        return image

"""What users hand the library, checked at the boundary: images, labels and keys.

Every public entry point (``genjax.VAE(...).fit(images)``, ``sample(n, key)``, ...) passes its
arrays through here, so a wrong input raises one :class:`ValueError` that names the fix, never
a Flax shape error, a silent rescale or a deleted-array error from deep inside a compiled step.

Images are stored the way the datasets are: ``uint8`` (N, H, W, C), pixels in [0, 255]. A float
array must be in [0, 1] and is quantized to the nearest byte, round(255 x); the library makes
its pixels from bytes inside the compiled step (:func:`genjax.data.to_pixels`).
"""

from __future__ import annotations

from typing import Union

import jax
import numpy as np

CHANNELS = (1, 3)  # grey and colour
KeyLike = Union[int, jax.Array]  # an int seed, or a key from jax.random.key(seed)


def as_images(images, name: str = "images") -> np.ndarray:
    """``images`` as uint8 (N, H, W, C): uint8 in [0, 255] or float in [0, 1], shaped (N, H, W)
    (a channel axis is added) or (N, H, W, C) with C = 1 or 3."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise ValueError(f"{name}: expected an array of images shaped (N, H, W) or (N, H, W, C), got shape "
                         f"{a.shape}; a single image x needs a leading axis: x[None]")
    if a.shape[-1] not in CHANNELS:
        hint = (" (this looks channels-first, (N, C, H, W): pass images.transpose(0, 2, 3, 1))"
                if a.shape[1] in CHANNELS else "")
        raise ValueError(f"{name}: expected 1 (grey) or 3 (colour) channels on the last axis, got shape "
                         f"{a.shape}{hint}")
    if len(a) == 0:
        raise ValueError(f"{name}: the array holds no images (shape {a.shape})")
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: integer pixels must lie in [0, 255], these span [{lo}, {hi}]")
        return a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 pixels in [0, 255] or floats in [0, 1], got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(a)))} pixels are NaN or infinite; "
                         "clean or drop those images")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        fix = ("divide by 255, or pass the uint8 array itself" if hi <= 255.0 and lo >= 0.0 else
               "rescale them to [0, 1]")
        raise ValueError(f"{name}: float pixels must lie in [0, 1], these span [{lo:g}, {hi:g}]: {fix}")
    return np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)


def as_labels(labels, n: int, num_classes: int, name: str = "labels") -> np.ndarray:
    """Integer class labels (n,) in [0, num_classes), as int32."""
    a = np.asarray(labels)
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"{name}: expected one integer label per image, shape ({n},), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"{name}: expected integer class labels, got dtype {a.dtype}")
    if n and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes - 1}] (num_classes={num_classes}), "
                         f"these span [{a.min()}, {a.max()}]")
    return a.astype(np.int32)


def as_key(key, impl: str = "rbg") -> jax.Array:
    """A JAX key from ``key``: an int seed (``jax.random.key(seed, impl)``) or a key already."""
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key), impl=impl)
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if isinstance(key, jax.Array) and key.dtype == np.uint32:
        raise ValueError("key: got raw key data (uint32); pass jax.random.key(seed) or an int seed, "
                         "or wrap it with jax.random.wrap_key_data")
    raise ValueError(f"key: expected an int seed or a key from jax.random.key(seed), got {type(key).__name__}")


def as_count(n, name: str = "n") -> int:
    """A positive number of images."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: expected a positive integer number of images, got {n!r}")
    return int(n)

"""Seed 000's PixelRNN: an LSTM over the 784-pixel raster of a binary image.

Tokens are {0, 1} pixels and START = 2; the input at step t is pixel t-1 (START
at t = 0), embedded, through ``layers`` stacked LSTMs of width ``hidden``, and a
linear head gives pixel t's logit. Initialization follows PyTorch
(``nn.Embedding``: N(0, 1); ``nn.LSTM`` and ``nn.Linear``: U(+-1/sqrt(hidden))).

The same parameters serve both passes:

* :meth:`PixelRNN.__call__` — teacher forcing over whole sequences (training,
  exact likelihood). The first layer's input projection is a lookup in the
  3-row table ``E W_ih + b`` (three tokens), so the only per-step matmul is the
  recurrent one, and the head is applied inside the top layer's loop; see
  :mod:`genjax.models.lstm`.
* :meth:`PixelRNN.step` — one time step for B sequences, for the sampler's
  ``lax.scan`` (:mod:`genjax.objectives.pixelrnn`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models import lstm
from genjax.models.layers import torch_uniform

START = 2  # the start token; pixels are 0 and 1
VOCAB = 3


class PixelRNN(nn.Module):
    hidden: int = 512
    layers: int = 1

    def setup(self):
        h = self.hidden
        init = torch_uniform(h)
        self.embed = self.param("embed", nn.initializers.normal(1.0), (VOCAB, h))
        # Per layer, as PyTorch's nn.LSTM: W_ih (in, 4H), W_hh (H, 4H), b_ih and b_hh (4H,), gates i, f, g, o.
        self.w_ih = [self.param(f"w_ih_{l}", init, (h, 4 * h)) for l in range(self.layers)]
        self.w_hh = [self.param(f"w_hh_{l}", init, (h, 4 * h)) for l in range(self.layers)]
        self.b_ih = [self.param(f"b_ih_{l}", init, (4 * h,)) for l in range(self.layers)]
        self.b_hh = [self.param(f"b_hh_{l}", init, (4 * h,)) for l in range(self.layers)]
        self.head_w = self.param("head_w", init, (h, 1))
        self.head_b = self.param("head_b", init, (1,))

    def input_table(self) -> jax.Array:
        """(3, 4H): each token's first-layer input pre-activations, E W_ih + b_ih + b_hh."""
        return self.embed @ self.w_ih[0] + self.b_ih[0] + self.b_hh[0]

    def _logits(self, h: jax.Array) -> jax.Array:
        return (h @ self.head_w)[..., 0] + self.head_b[0]

    def initial_carry(self, batch: int) -> tuple[tuple[jax.Array, jax.Array], ...]:
        """Zero (h, c) for every layer."""
        zeros = jnp.zeros((batch, self.hidden), jnp.float32)
        return tuple((zeros, zeros) for _ in range(self.layers))

    def __call__(self, pixels: jax.Array) -> jax.Array:
        """Teacher forcing: binary ``pixels`` (B, T) -> logits (B, T) of p(x_t = 1 | x_<t)."""
        b = pixels.shape[0]
        tokens = jnp.concatenate([jnp.full((b, 1), START, jnp.int32), pixels[:, :-1].astype(jnp.int32)], axis=1)
        zeros = jnp.zeros((b, self.hidden), jnp.float32)
        top = self.layers - 1  # the head rides in the top layer's loop (its h_t are never stored)
        out = lstm.layer(self.w_hh[0], zeros, zeros, table=self.input_table(), tokens=tokens.T,
                         head_w=self.head_w if top == 0 else None)
        for l in range(1, self.layers):  # out: the layer below's h_1..h_T (T, B, H)
            gates_x = out @ self.w_ih[l] + (self.b_ih[l] + self.b_hh[l])
            out = lstm.layer(self.w_hh[l], zeros, zeros, gates_x=gates_x, head_w=self.head_w if l == top else None)
        return out[..., 0].T + self.head_b[0]  # (B, T)

    def step(self, carry, token: jax.Array, table: jax.Array):
        """One time step: (carry, previous tokens (B,), :meth:`input_table`) -> (carry, logits (B,))
        of the next pixel. The table is an argument so that a loop computes it once."""
        new = []
        h, c = carry[0]
        h, c, _ = lstm.cell(table[token] + h @ self.w_hh[0], c)
        new.append((h, c))
        for l in range(1, self.layers):
            hl, cl = carry[l]
            hl, cl, _ = lstm.cell(h @ self.w_ih[l] + self.b_ih[l] + self.b_hh[l] + hl @ self.w_hh[l], cl)
            new.append((hl, cl))
            h = hl
        return tuple(new), self._logits(h)

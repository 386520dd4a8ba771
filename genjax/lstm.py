r"""The LSTM recurrence as pure functions: one cell step, and a whole sequence with a fast gradient.

PyTorch's ``nn.LSTM`` cell, gates in PyTorch's order (i, f, g, o)::

    [a_i, a_f, a_g, a_o] = x_t W_ih + b + h_{t-1} W_hh
    i = \sigma(a_i),  f = \sigma(a_f),  g = \tanh(a_g),  o = \sigma(a_o)
    c_t = f c_{t-1} + i g,    h_t = o \tanh(c_t)

Only ``h_{t-1} W_hh`` must run step by step; the input part ``x_t W_ih + b`` is
known for all t beforehand (teacher forcing). For a small vocabulary it is a
table lookup (:func:`sequence_from_tokens`: a token's row of ``E W_ih + b``),
otherwise one large matmul outside the loop (:func:`sequence`).

Both sequence functions have a hand-written backward pass (``jax.custom_vjp``):
the reverse scan carries only (dh, dc) and emits each step's gate gradient
``da_t``, and the recurrent weight gradient is then **one** matmul over all steps,

    dW_hh = \sum_t h_{t-1}^T da_t,

where autodiff of a scan would add a (H, 4H) partial sum into the carry at every
step (a full pass over the weight matrix per step). Residuals kept from the
forward pass: the activated gates, c_{t-1} and h_t; c_t and tanh(c_t) are
recomputed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gates(pre: jax.Array) -> jax.Array:
    """Activated gates [\sigma(a_i), \sigma(a_f), \tanh(a_g), \sigma(a_o)] from pre-activations (..., 4H)."""
    i, f, g, o = jnp.split(pre, 4, axis=-1)
    return jnp.concatenate([jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)], axis=-1)


def cell(pre: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One step from pre-activations (B, 4H) and c_{t-1} (B, H): (h_t, c_t, activated gates)."""
    act = gates(pre)
    i, f, g, o = jnp.split(act, 4, axis=-1)
    c = f * c + i * g
    return o * jnp.tanh(c), c, act


def _forward(input_gates, w_hh, h0, c0, xs):
    """Scan the cell; ``input_gates(x_t)`` gives step t's input pre-activations.
    Returns h_1..h_T (T, B, H) and the residuals for the backward pass."""

    def body(carry, x):
        h, c = carry
        h_new, c_new, act = cell(input_gates(x) + h @ w_hh, c)
        return (h_new, c_new), (h_new, c, act)

    _, (hs, c_prev, acts) = jax.lax.scan(body, (h0, c0), xs)
    return hs, (hs, c_prev, acts)


def _backward(w_hh, h0, residuals, dhs, one_hot=None):
    """The reverse scan, then the weight gradient as one matmul: (da (T, B, 4H), dW_hh, dh_0,
    dc_0, d table). With ``one_hot`` (T, B, V), the rows of the token table get their
    gradient \sum_t one_hot_t^T da_t from the same matmul (V extra columns beside h_{t-1})."""
    hs, c_prev, acts = residuals
    w_t = w_hh.T

    def body(carry, inputs):
        dh_next, dc_next = carry
        dh_out, cp, act = inputs
        i, f, g, o = jnp.split(act, 4, axis=-1)
        tc = jnp.tanh(f * cp + i * g)
        dh = dh_out + dh_next
        dc = dc_next + dh * o * (1.0 - tc * tc)
        da = jnp.concatenate([dc * g * i * (1.0 - i), dc * cp * f * (1.0 - f), dc * i * (1.0 - g * g),
                              dh * tc * o * (1.0 - o)], axis=-1)
        return (da @ w_t, dc * f), da

    zeros = jnp.zeros_like(h0)
    (dh0, dc0), das = jax.lax.scan(body, (zeros, zeros), (dhs, c_prev, acts), reverse=True)
    lhs = jnp.concatenate([h0[None], hs[:-1]])
    h = lhs.shape[-1]
    if one_hot is not None:
        lhs = jnp.concatenate([lhs, one_hot], axis=-1)
    t, b, k = lhs.shape
    grads = lhs.reshape(t * b, k).T @ das.reshape(t * b, -1)  # one GEMM over all T*B rows
    return das, grads[:h], dh0, dc0, grads[h:]


@jax.custom_vjp
def sequence(gates_x: jax.Array, w_hh: jax.Array, h0: jax.Array, c0: jax.Array) -> jax.Array:
    """h_1..h_T (T, B, H) for input pre-activations ``gates_x`` (T, B, 4H) = x_t W_ih + b."""
    return _forward(lambda g: g, w_hh, h0, c0, gates_x)[0]


def _sequence_fwd(gates_x, w_hh, h0, c0):
    hs, res = _forward(lambda g: g, w_hh, h0, c0, gates_x)
    return hs, (w_hh, h0, res)


def _sequence_bwd(saved, dhs):
    w_hh, h0, res = saved
    das, dw_hh, dh0, dc0, _ = _backward(w_hh, h0, res, dhs)
    return das, dw_hh, dh0, dc0


sequence.defvjp(_sequence_fwd, _sequence_bwd)


@jax.custom_vjp
def sequence_from_tokens(table: jax.Array, tokens: jax.Array, w_hh: jax.Array, h0: jax.Array,
                         c0: jax.Array) -> jax.Array:
    """h_1..h_T (T, B, H) when step t's input pre-activations are ``table[tokens[t]]``
    (``table`` (V, 4H) = E W_ih + b for an embedding E; ``tokens`` (T, B) integers)."""
    return _forward(lambda tok: table[tok], w_hh, h0, c0, tokens)[0]


def _tokens_fwd(table, tokens, w_hh, h0, c0):
    hs, res = _forward(lambda tok: table[tok], w_hh, h0, c0, tokens)
    return hs, (table, tokens, w_hh, h0, res)


def _tokens_bwd(saved, dhs):
    table, tokens, w_hh, h0, res = saved
    one_hot = jax.nn.one_hot(tokens, table.shape[0], dtype=table.dtype)  # d table[v] = sum of da where token v
    _, dw_hh, dh0, dc0, dtable = _backward(w_hh, h0, res, dhs, one_hot)
    return dtable, None, dw_hh, dh0, dc0


sequence_from_tokens.defvjp(_tokens_fwd, _tokens_bwd)

"""Matmul (and convolution) FLOPs of a JAX function, counted from its jaxpr: what the benchmarks'
GFLOP/s figures divide by, and what their matmul-only floors are checked against."""

from __future__ import annotations

import math

import jax
from jax._src.interpreters import partial_eval as pe  # dce_jaxpr: no public name


def subjaxprs(value):
    """The jaxprs inside an equation parameter (a scan's, a custom VJP's, a cond's branches)."""
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from subjaxprs(v)


def eqn_flops(eqn, convs: bool = False) -> float:
    """2 x multiply-adds of one ``dot_general`` (and with ``convs``, one convolution, less the taps
    that fall on an input dilation's zeros); 0 for any other equation (its sub-jaxprs not counted)."""
    name = eqn.primitive.name
    if name == "dot_general":
        lhs, rhs = (v.aval.shape for v in eqn.invars)
        (_, rc), (_, rb) = eqn.params["dimension_numbers"]
        return 2 * math.prod(lhs) * math.prod(rhs) / math.prod(rhs[d] for d in (*rc, *rb))
    if convs and name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
        # Of an input-dilated (transposed) convolution's window, 1 / prod(lhs_dilation) is data.
        return (2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs) / out_features
                / math.prod(eqn.params["lhs_dilation"]))
    return 0.0


def jaxpr_flops(jaxpr, convs: bool = False) -> float:
    """:func:`eqn_flops` summed over ``jaxpr``, sub-jaxprs included, scans times length."""
    total = 0.0
    for eqn in jaxpr.eqns:
        total += eqn_flops(eqn, convs)
        inner = sum(jaxpr_flops(j, convs) for v in eqn.params.values() for j in subjaxprs(v))
        total += inner * (eqn.params["length"] if eqn.primitive.name == "scan" else 1)
    return total


def live_jaxpr(fn, *args):
    """The jaxpr of ``fn(*args)`` without the equations nothing uses (dead-code eliminated, as XLA
    compiles it): e.g. the weight gradient a hand-written VJP returns where only the input's is needed."""
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))[0]


def step_flops(fn, *args, convs: bool = False) -> float:
    """Matmul (and conv) FLOPs of one call of ``fn(*args)`` (a training step, a floor), from its live jaxpr."""
    return jaxpr_flops(live_jaxpr(fn, *args), convs)


__all__ = ["eqn_flops", "jaxpr_flops", "live_jaxpr", "step_flops", "subjaxprs"]

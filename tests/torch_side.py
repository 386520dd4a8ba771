"""The PyTorch side of tests whose PyTorch work cannot share the test process; each function runs
in a fresh Python process through ``conftest.in_fresh_process``, and takes and returns JSON values.

``torch.utils.flop_counter`` imports triton (PyTorch's CUDA builds ship it), and importing triton
into a process that has loaded TensorFlow is a segmentation fault (issue 30; the suite's process
has loaded it, for tests/test_prepare.py imports it at collection). PyTorch itself, without
triton, is fine in the test process.
"""

from __future__ import annotations

import numpy as np


def conv_vae_step_counts(image_shapes: dict[str, list[int]]) -> dict[str, dict]:
    """For each of ``benchmarks.torch_conv_vae``'s models (``{model: image shape}``) at batch 128: the
    dense and convolution layers one forward pass calls, in order (``kind``, input and output
    features or channels ``c_in``, ``c_out``, ``kernel`` size, input and output shapes ``x``,
    ``y``), and ``step_arithmetic``'s FlopCounterMode count of one training step (``flops``)."""
    from torch import nn

    from benchmarks import torch_conv_vae

    def record(m, args, out):
        conv = not isinstance(m, nn.Linear)
        layers.append({"kind": type(m).__name__, "c_in": m.in_channels if conv else m.in_features,
                       "c_out": m.out_channels if conv else m.out_features,
                       "kernel": list(m.kernel_size) if conv else [1, 1],
                       "x": list(args[0].shape), "y": list(out.shape)})

    counts = {}
    for model, shape in image_shapes.items():
        layers = []
        net = torch_conv_vae.build(model)
        hooks = [m.register_forward_hook(record) for m in net.modules()
                 if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        net(torch_conv_vae.pixels(model, np.zeros((torch_conv_vae.BATCH_SIZE, *shape), np.uint8)))
        for hook in hooks:
            hook.remove()
        counts[model] = {"layers": layers, "flops": torch_conv_vae.step_arithmetic(model, tuple(shape))}
    return counts

"""Back-propagation through a frozen ``dynamic-int8`` backbone.

PyTorch's dynamic int8 ``Linear`` (``quantized::linear_dynamic``) has no autograd kernel: a
backward pass through it only warns and drops the layer's input gradient, so the gradient reaching
whatever is trained in front of the backbone (a reprogramming trunk, an image projector) would
flow through the residual stream alone. QLoRA
solves the same problem for 4-bit weights by computing the backward with the dequantized weights;
:func:`enable_input_gradients` does that here: the forward still runs the int8 kernel (what
inference runs), the backward multiplies by the dequantized weight. The weights stay frozen.
"""

from __future__ import annotations

import torch
from torch import nn

try:  # the dynamic quantized Linear moved between torch releases
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
except ImportError:  # pragma: no cover
    DynamicQuantizedLinear = None


class _Int8LinearWithInputGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:  # type: ignore[override]
        ctx.layer = layer
        return layer(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        weight = ctx.layer.weight().dequantize()  # [out, in]
        return grad @ weight.to(grad.dtype), None


class Int8LinearWithInputGrad(nn.Module):
    """Wraps one dynamic int8 ``Linear``: identical forward, input gradient through its dequantized weight."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _Int8LinearWithInputGrad.apply(x, self.layer)
        return self.layer(x)


def enable_input_gradients(module: nn.Module) -> int:
    """Wrap every dynamic int8 ``Linear`` inside ``module`` (idempotent); returns how many were wrapped."""
    if DynamicQuantizedLinear is None:
        return 0
    wrapped = 0
    for parent in list(module.modules()):
        if isinstance(parent, Int8LinearWithInputGrad):
            continue
        for name, child in list(parent.named_children()):
            if isinstance(child, DynamicQuantizedLinear):
                setattr(parent, name, Int8LinearWithInputGrad(child))
                wrapped += 1
    return wrapped

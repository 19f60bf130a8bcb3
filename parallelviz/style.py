"""Colours, opacities, timings and TeX label strings as plain data (no manim)."""

from __future__ import annotations

from dataclasses import dataclass

from typing import Sequence

from parallelviz.schedule import Op, OpKind, TensorRef

__all__ = ["Style", "DEFAULT_STYLE", "tex_label", "step_formula", "PHASE_CAPTIONS"]


@dataclass(frozen=True)
class Style:
    """Look and pace of a scene.

    Parameters
    ----------
    weight_color, activation_color, gradient_color, flop_color, partial_color, comm_color
        Hex colours of weights (blue), activations (green), gradients (red), lit FLOP
        blocks (yellow), partial sums and moving data.
    face_opacity
        Fill opacity of a visible tensor face (the seed's ``base_alpha``).
    flop_opacity
        Fill opacity of a FLOP block while its matmul runs.
    step_seconds
        Run time of one schedule step.
    """

    background_color: str = "#FFFFFF"
    ink_color: str = "#1A1A1A"
    weight_color: str = "#3B5BDB"
    activation_color: str = "#2F9E44"
    gradient_color: str = "#E03131"
    flop_color: str = "#F59F00"
    partial_color: str = "#AE3EC9"
    comm_color: str = "#1098AD"
    optimizer_color: str = "#868E96"
    face_opacity: float = 0.3
    stroke_width: float = 1.5
    flop_opacity: float = 0.18
    label_font_size: float = 22
    step_seconds: float = 0.8
    comm_seconds: float = 1.2


DEFAULT_STYLE = Style()

_TEX_NAMES = {"x": "x", "h": "h", "W1": "W_1", "W2": "W_2"}

PHASE_CAPTIONS = {
    "forward": "Forward pass",
    "backward": "Backward pass",
    "gradient sync": "Gradient all-reduce",
}
"""Caption shown on screen (and as a subcaption) for each schedule phase."""


def tex_label(tensor: TensorRef) -> str:
    """The LaTeX label of a tensor, with ``\\nabla`` for gradients.

    Examples
    --------
    >>> tex_label(TensorRef("W1", 3))
    'W_1^{3}'
    >>> tex_label(TensorRef("x", 2, grad=True))
    '\\\\nabla x^{2}'
    """
    body = f"{_TEX_NAMES[tensor.name]}^{{{tensor.layer}}}"
    return rf"\nabla {body}" if tensor.grad else body


def _t(name: str, layer: int, grad: bool = False) -> str:
    return tex_label(TensorRef(name, layer, grad))


def _op_formula(kind: str, tensor: TensorRef, partial: bool) -> str | None:
    """TeX for what one op computes (None for ops with no formula of their own)."""
    l = tensor.layer
    if kind == "L":
        return rf"{_t('x', 0)} \leftarrow \text{{input batch}}"
    if kind == "F" and tensor.name == "h":
        return rf"{_t('h', l)} = \max\!\left(0,\ {_t('x', l)}\, {_t('W1', l)}\right)"
    if kind == "F" and tensor.name == "x":
        if partial:
            return rf"{_t('h', l - 1)}\, {_t('W2', l - 1)}\ \text{{(partial sum of }} {_t('x', l)} \text{{)}}"
        return rf"{_t('x', l)} = {_t('x', l - 1)} + {_t('h', l - 1)}\, {_t('W2', l - 1)}"
    if kind == "LOSS":
        return rf"{_t('x', l, True)} = \partial \mathcal{{L}} / \partial {_t('x', l)}"
    if kind == "B" and tensor.name == "h":
        return rf"{_t('h', l, True)} = \left({_t('x', l + 1, True)}\, {{{_t('W2', l)}}}^{{\top}}\right) \odot [{_t('h', l)} > 0]"
    if kind == "B" and tensor.name == "x":
        grad_in = rf"{_t('h', l, True)}\, {{{_t('W1', l)}}}^{{\top}}"
        if partial:
            return rf"{grad_in}\ \text{{(partial sum of }} {_t('x', l, True)} \text{{)}}"
        return rf"{_t('x', l, True)} = {_t('x', l + 1, True)} + {grad_in}"
    if kind == "W" and tensor.name == "W2":
        return rf"{_t('W2', l, True)} = {{{_t('h', l)}}}^{{\top}}\, {_t('x', l + 1, True)}"
    if kind == "W" and tensor.name == "W1":
        return rf"{_t('W1', l, True)} = {{{_t('x', l)}}}^{{\top}}\, {_t('h', l, True)}"
    return None


_COLLECTIVE_NAMES = {"AR": "all-reduce", "AG": "all-gather", "RS": "reduce-scatter", "SEND": "send", "RECV": "recv"}


def step_formula(ops: Sequence[Op]) -> str:
    r"""One line of TeX describing what one GPU does in a step.

    Examples
    --------
    >>> from parallelviz.schedule import OpKind
    >>> print(step_formula([Op(0, OpKind.BACKWARD_WEIGHT, TensorRef("W2", 5, True)), Op(0, OpKind.FREE, TensorRef("x", 6))]))
    \nabla W_2^{5} = {h^{5}}^{\top}\, \nabla x^{6}\qquad\text{free } x^{6}
    """
    parts = [f for op in ops if (f := _op_formula(op.kind.value, op.tensor, op.partial))]
    frees = [tex_label(op.tensor) for op in ops if op.kind == OpKind.FREE]
    comms: dict[tuple[str, str], list[TensorRef]] = {}
    for op in ops:
        if op.is_collective:
            comms.setdefault((op.kind.value, op.reduce), []).append(op.tensor)
    if frees:
        parts.append(r"\text{free } " + r",\ ".join(frees))
    for (kind, reduce), tensors in comms.items():
        verb = _COLLECTIVE_NAMES[kind] + (" (mean)" if reduce == "mean" else "")
        if len(tensors) > 3 and all(t.is_weight for t in tensors):
            names = rf"\text{{all {len(tensors)} weight gradients}}"
        else:
            names = r",\ ".join(tex_label(t) for t in tensors)
        parts.append(rf"\text{{{verb} }}\ {names}")
    return r"\qquad".join(parts)

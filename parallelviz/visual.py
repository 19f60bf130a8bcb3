"""What the picture shows after each step: the state of every tensor face, derived from the schedule (no manim)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from parallelviz.checker import LiveSet, Liveness
from parallelviz.schedule import OpKind, Schedule, Step, TensorRef

__all__ = ["FaceState", "Slot", "StepView", "visual_steps", "initial_faces", "PARTIAL_SLOT"]

PARTIAL_SLOT = "x~"
"""Slot name of the far face of a ``W2`` block, where a partial sum of ``x`` lands."""

Slot = tuple[int, str, int]
"""A place a tensor is drawn: ``(gpu, name, layer)``; ``name`` may be ``PARTIAL_SLOT``."""


@dataclass(frozen=True)
class FaceState:
    """How one slot looks.

    Parameters
    ----------
    role
        ``"weight"``, ``"activation"``, ``"gradient"`` or ``"partial"``.
    tensor
        The tensor whose label is shown.
    """

    role: str
    tensor: TensorRef


@dataclass(frozen=True)
class StepView:
    """What one step changes on screen.

    Parameters
    ----------
    index
        Step index in the schedule.
    step
        The schedule step.
    faces
        Visible slots after the step and how they look (absent = hidden).
    lit
        ``(gpu, weight)`` FLOP blocks whose matmul runs in this step.
    collectives
        One entry per collective call: ``(kind, tensor, group)``.
    """

    index: int
    step: Step
    faces: dict[Slot, FaceState]
    lit: tuple[tuple[int, TensorRef], ...]
    collectives: tuple[tuple[OpKind, TensorRef, tuple[int, ...]], ...]


def _faces(live: list[LiveSet], separate_partials: bool) -> dict[Slot, FaceState]:
    faces: dict[Slot, FaceState] = {}
    for gpu, tensors in enumerate(live):
        for tensor, partial in tensors.items():
            slot: Slot = (gpu, tensor.name, tensor.layer)
            if partial and separate_partials and tensor.name == "x" and not tensor.grad:
                faces[(gpu, PARTIAL_SLOT, tensor.layer)] = FaceState("partial", tensor)
                continue
            if tensor.grad:
                state = FaceState("partial" if partial else "gradient", tensor)
            elif slot in faces:  # the gradient already owns this face
                continue
            else:
                state = FaceState("weight" if tensor.is_weight else "activation", tensor)
            faces[slot] = state
    return faces


def initial_faces(schedule: Schedule) -> dict[Slot, FaceState]:
    """Visible slots before the first step: every GPU's weights."""
    return _faces(Liveness(schedule).live, schedule.config.parallel.tp > 1)


def visual_steps(schedule: Schedule) -> Iterator[StepView]:
    """The picture after each step of ``schedule``.

    A gradient replaces its tensor on the same face (the seed's ``make_grad``); a
    face disappears when neither the tensor nor its gradient is live. With tensor
    parallelism a partial sum of ``x`` is drawn on the far face of its ``W2`` block
    until its all-reduce completes it.
    """
    separate = schedule.config.parallel.tp > 1
    for index, live in Liveness(schedule):
        step = schedule.steps[index]
        lit = []
        collectives = {}
        for op in step.ops:
            if op.matmul is not None:
                lit.append((op.gpu, op.matmul))
            if op.is_collective:
                collectives[(op.kind, op.tensor, op.group)] = None
        yield StepView(index, step, _faces(live, separate), tuple(lit), tuple(collectives))

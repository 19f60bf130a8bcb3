"""The schedule IR: plain data describing which op each GPU runs at each step."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Iterator, NamedTuple

from parallelviz.config import RunConfig

__all__ = ["OpKind", "TensorRef", "Op", "Step", "Schedule", "COLLECTIVES"]


class OpKind(Enum):
    """What an op does; the value is its compact code in schedule strings."""

    LOAD = "L"  #: a tensor arrives (the input batch)
    FORWARD = "F"  #: forward matmul
    LOSS = "LOSS"  #: loss and its gradient with respect to the last activation
    BACKWARD_INPUT = "B"  #: input-gradient matmul
    BACKWARD_WEIGHT = "W"  #: weight-gradient matmul
    FREE = "X"  #: release a tensor's memory
    ALL_REDUCE = "AR"
    ALL_GATHER = "AG"
    REDUCE_SCATTER = "RS"
    SEND = "SEND"
    RECV = "RECV"


COLLECTIVES = frozenset({OpKind.ALL_REDUCE, OpKind.ALL_GATHER, OpKind.REDUCE_SCATTER, OpKind.SEND, OpKind.RECV})
"""Op kinds that move data between GPUs and involve a group."""

WEIGHTS = ("W1", "W2")
ACTIVATIONS = ("x", "h")

_TENSOR_RE = re.compile(r"^(?P<grad>d?)(?P<name>W1|W2|x|h)\[(?P<layer>\d+)\](?:@(?P<mb>\d+))?$")


class TensorRef(NamedTuple):
    """A tensor as the schedule names it.

    Parameters
    ----------
    name
        ``"x"`` (residual activation, input of block ``layer``), ``"h"`` (hidden
        activation of block ``layer``), ``"W1"`` or ``"W2"`` (weights of block ``layer``).
    layer
        Block index; ``x`` runs from 0 to ``layers`` inclusive.
    grad
        True for the gradient of the tensor.
    microbatch
        Microbatch index, for pipeline schedules (``None`` when the whole local batch
        is one piece).

    Examples
    --------
    >>> str(TensorRef("W1", 3, grad=True))
    'dW1[3]'
    >>> TensorRef.from_str("x[2]@1")
    TensorRef(name='x', layer=2, grad=False, microbatch=1)
    """

    name: str
    layer: int
    grad: bool = False
    microbatch: int | None = None

    @property
    def is_weight(self) -> bool:
        """True for ``W1``, ``W2`` and their gradients."""
        return self.name in WEIGHTS

    @property
    def gradient(self) -> TensorRef:
        """The gradient of this tensor."""
        return self._replace(grad=True)

    @property
    def value(self) -> TensorRef:
        """The tensor itself (not its gradient)."""
        return self._replace(grad=False)

    def __str__(self) -> str:
        mb = "" if self.microbatch is None else f"@{self.microbatch}"
        return f"{'d' if self.grad else ''}{self.name}[{self.layer}]{mb}"

    @classmethod
    def from_str(cls, text: str) -> TensorRef:
        """Parse the form produced by ``str``."""
        match = _TENSOR_RE.match(text.strip())
        if not match:
            raise ValueError(f"not a tensor reference: {text!r}")
        mb = match["mb"]
        return cls(match["name"], int(match["layer"]), bool(match["grad"]), None if mb is None else int(mb))


@dataclass(frozen=True)
class Op:
    """One thing one GPU does in one step.

    Parameters
    ----------
    gpu
        Global rank of the GPU.
    kind
        What the op does.
    tensor
        The tensor the op produces (for ``FREE``: releases; for a collective: moves).
    reads
        Tensors that must be live on the GPU when the op runs.
    group
        For a collective: the ranks taking part, in order. Empty otherwise.
    reduce
        For ``ALL_REDUCE`` and ``REDUCE_SCATTER``: ``"sum"`` or ``"mean"``.
    partial
        True when the op produces a partial sum that a collective must complete
        before the tensor may be read (Megatron's row-parallel ``W2`` output, the
        input gradient of a column-parallel ``W1``).

    Examples
    --------
    >>> str(Op(0, OpKind.FORWARD, TensorRef("h", 2), reads=(TensorRef("x", 2), TensorRef("W1", 2))))
    'F h[2]'
    >>> str(Op(1, OpKind.ALL_REDUCE, TensorRef("x", 3), group=(0, 1), reduce="sum"))
    'AR x[3]{0,1}'
    """

    gpu: int
    kind: OpKind
    tensor: TensorRef
    reads: tuple[TensorRef, ...] = ()
    group: tuple[int, ...] = ()
    reduce: str = ""
    partial: bool = False

    @property
    def is_collective(self) -> bool:
        """True for ops that move data between GPUs."""
        return self.kind in COLLECTIVES

    @property
    def is_compute(self) -> bool:
        """True for matmuls and the loss."""
        return self.kind in (OpKind.FORWARD, OpKind.BACKWARD_INPUT, OpKind.BACKWARD_WEIGHT, OpKind.LOSS)

    @property
    def matmul(self) -> TensorRef | None:
        """The weight whose matmul this op runs (its FLOP block), or None.

        Examples
        --------
        >>> Op(0, OpKind.BACKWARD_WEIGHT, TensorRef("W2", 4, grad=True)).matmul
        TensorRef(name='W2', layer=4, grad=False, microbatch=None)
        """
        if self.kind == OpKind.BACKWARD_WEIGHT:
            return self.tensor.value
        if self.kind in (OpKind.FORWARD, OpKind.BACKWARD_INPUT):
            return next((t for t in self.reads if t.is_weight and not t.grad), None)
        return None

    def __str__(self) -> str:
        text = f"{self.kind.value} {self.tensor}"
        if self.partial:
            text += "~"
        if self.group:
            text += "{" + ",".join(map(str, self.group)) + "}"
        return text


@dataclass(frozen=True)
class Step:
    """Ops that happen together, in lockstep across the GPUs.

    Within a step the ops of one GPU run in list order (a free after the compute
    that last reads its tensor).

    Parameters
    ----------
    ops
        The ops of every GPU in this step.
    phase
        ``"forward"``, ``"backward"`` or ``"update"``, for captions.
    """

    ops: tuple[Op, ...]
    phase: str = "forward"

    def on_gpu(self, gpu: int) -> tuple[Op, ...]:
        """The ops one GPU runs in this step."""
        return tuple(op for op in self.ops if op.gpu == gpu)

    def __str__(self) -> str:
        return "; ".join(str(op) for op in self.ops)


@dataclass(frozen=True)
class Schedule:
    """An ordered list of steps for a configuration.

    Parameters
    ----------
    config
        The run the schedule trains.
    steps
        The steps, in order.
    name
        The builder that made it.
    """

    config: RunConfig
    steps: tuple[Step, ...]
    name: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def world_size(self) -> int:
        """Number of GPUs."""
        return self.config.parallel.world_size

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def ops(self) -> Iterable[tuple[int, Op]]:
        """Every (step index, op) pair, in order."""
        for index, step in enumerate(self.steps):
            for op in step.ops:
                yield index, op

    def gpu_lines(self, gpu: int) -> list[str]:
        """One string per step: what ``gpu`` does, ops joined with ``'; '`` (``''`` when idle)."""
        return ["; ".join(str(op) for op in step.on_gpu(gpu)) for step in self.steps]

    def format_grid(self, mark_step: int | None = None, message: str = "") -> str:
        """The schedule as a table of steps (rows) by GPUs (columns).

        Parameters
        ----------
        mark_step
            A step to mark with ``<-- ERROR HERE`` (and ``message``).
        """
        columns = [self.gpu_lines(gpu) for gpu in range(self.world_size)]
        headers = [f"GPU {gpu}" for gpu in range(self.world_size)]
        widths = [max([len(h)] + [len(c) for c in col]) for h, col in zip(headers, columns)]
        step_width = max(4, len(str(len(self.steps) - 1)))
        phase_width = max([5] + [len(s.phase) for s in self.steps])

        def row(label: str, phase: str, cells: list[str]) -> str:
            body = " | ".join(cell.ljust(width) for cell, width in zip(cells, widths))
            return f"{label.rjust(step_width)} {phase.ljust(phase_width)} | {body}".rstrip()

        lines = [row("step", "phase", headers)]
        lines.append("-" * len(lines[0]))
        for index, step in enumerate(self.steps):
            line = row(str(index), step.phase, [col[index] for col in columns])
            if index == mark_step:
                line += "  <-- ERROR HERE" + (f": {message}" if message else "")
            lines.append(line)
        return "\n".join(lines)

"""Numpy executor: runs a schedule on float64 shards, one dict per simulated GPU, and checks it against one device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from parallelviz.checker import check, step_events
from parallelviz.config import RunConfig
from parallelviz.schedule import Op, OpKind, Schedule, TensorRef
from parallelviz.shapes import full_shape, local_shape, local_slices

__all__ = [
    "TOLERANCE",
    "ExecutionError",
    "Inputs",
    "Result",
    "Verification",
    "Executor",
    "make_inputs",
    "reference",
    "execute",
    "verify",
]

TOLERANCE = 1e-10
"""Largest absolute error :func:`verify` accepts (float64 round-off is far below it)."""

Tensors = dict[TensorRef, np.ndarray]


class ExecutionError(ValueError):
    """An op the executor cannot run (unknown op, operand missing or not declared in its reads)."""


@dataclass(frozen=True)
class Inputs:
    """The random data of one training step, full size.

    Parameters
    ----------
    x, y
        Input batch and target, both ``(batch, d_model)``.
    w1, w2
        Weights per layer: ``(d_model, d_hidden)`` and ``(d_hidden, d_model)``,
        scaled by ``1/sqrt(fan_in)`` (``W2`` also by ``1/sqrt(layers)``, as GPT-2
        scales residual branches) so activations stay of order one at any depth.
    """

    x: np.ndarray
    y: np.ndarray
    w1: tuple[np.ndarray, ...]
    w2: tuple[np.ndarray, ...]

    def weight(self, tensor: TensorRef) -> np.ndarray:
        """The full value of weight ``W1[l]`` or ``W2[l]``."""
        return (self.w1 if tensor.name == "W1" else self.w2)[tensor.layer]


def make_inputs(config: RunConfig, seed: int) -> Inputs:
    """Random inputs, targets and weights from ``np.random.default_rng(seed)``."""
    m = config.model
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m.batch, m.d_model))
    y = rng.standard_normal((m.batch, m.d_model))
    w1, w2 = [], []
    for _ in range(m.layers):
        w1.append(rng.standard_normal((m.d_model, m.d_hidden)) / np.sqrt(m.d_model))
        w2.append(rng.standard_normal((m.d_hidden, m.d_model)) / np.sqrt(m.d_hidden * m.layers))
    return Inputs(x, y, tuple(w1), tuple(w2))


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0.0)


def reference(config: RunConfig, seed: int = 0) -> tuple[float, dict[TensorRef, np.ndarray]]:
    """Loss and weight gradients of one unsharded forward and backward pass.

    The loss is ``0.5 * sum((x^L - y)**2) / batch``.

    Returns
    -------
    loss, grads
        The loss, and ``dW1[l]``, ``dW2[l]`` (full size) for every layer.
    """
    inputs = make_inputs(config, seed)
    xs, hs = [inputs.x], []
    for w1, w2 in zip(inputs.w1, inputs.w2):
        hs.append(_relu(xs[-1] @ w1))
        xs.append(xs[-1] + hs[-1] @ w2)
    diff = xs[-1] - inputs.y
    loss = 0.5 * float(np.sum(diff**2)) / config.model.batch
    grad_x = diff / config.model.batch
    grads: dict[TensorRef, np.ndarray] = {}
    for layer in reversed(range(config.model.layers)):
        grad_pre = (grad_x @ inputs.w2[layer].T) * (hs[layer] > 0)
        grads[TensorRef("W2", layer, grad=True)] = hs[layer].T @ grad_x
        grads[TensorRef("W1", layer, grad=True)] = xs[layer].T @ grad_pre
        grad_x = grad_x + grad_pre @ inputs.w1[layer].T
    return loss, grads


@dataclass
class Result:
    """What an execution leaves behind.

    Parameters
    ----------
    config
        The run executed.
    tensors
        Final tensors of each GPU (its shards only).
    losses
        Loss computed by each GPU that ran ``LOSS`` (its replica's local loss).
    inputs
        The random data used.
    """

    config: RunConfig
    tensors: list[Tensors]
    losses: dict[int, float]
    inputs: Inputs

    @property
    def loss(self) -> float:
        """Global loss: mean over data-parallel replicas (NaN if a replica computed none)."""
        per_replica = [
            [self.losses[gpu] for gpu in self._replica(d) if gpu in self.losses]
            for d in range(self.config.parallel.dp)
        ]
        if not all(per_replica):
            return float("nan")
        return float(np.mean([values[0] for values in per_replica]))

    def _replica(self, dp_index: int) -> list[int]:
        return [self.config.rank(dp_index, t) for t in range(self.config.parallel.tp)]


class Executor:
    """Runs a schedule step by step on numpy shards.

    Each GPU starts with its shards of every weight. A step runs in the order of
    :func:`parallelviz.checker.step_events`: each GPU's ops in list order, and each
    collective once all members of its group have reached it.

    Parameters
    ----------
    schedule
        The schedule to run (not checked here: see :func:`verify`).
    seed
        Seed of the random inputs and weights.
    """

    def __init__(self, schedule: Schedule, seed: int = 0) -> None:
        self.schedule = schedule
        self.config = schedule.config
        self.inputs = make_inputs(self.config, seed)
        self.tensors: list[Tensors] = [self._initial(gpu) for gpu in range(schedule.world_size)]
        self.losses: dict[int, float] = {}
        self._index = -1
        self._compute: dict[tuple[OpKind, str, bool], Callable[[Op], np.ndarray]] = {
            (OpKind.LOAD, "x", False): self._load,
            (OpKind.FORWARD, "h", False): self._forward_h,
            (OpKind.FORWARD, "x", False): self._forward_x,
            (OpKind.LOSS, "x", True): self._loss,
            (OpKind.BACKWARD_INPUT, "h", True): self._backward_h,
            (OpKind.BACKWARD_INPUT, "x", True): self._backward_x,
            (OpKind.BACKWARD_WEIGHT, "W2", True): self._grad_w2,
            (OpKind.BACKWARD_WEIGHT, "W1", True): self._grad_w1,
        }
        self._collective: dict[OpKind, Callable[[tuple[Op, ...]], None]] = {
            OpKind.ALL_REDUCE: self._all_reduce,
            OpKind.ALL_GATHER: self._all_gather,
            OpKind.REDUCE_SCATTER: self._reduce_scatter,
            OpKind.SEND: self._send_recv,
            OpKind.RECV: self._send_recv,
        }

    def _initial(self, gpu: int) -> Tensors:
        tensors: Tensors = {}
        for layer in range(self.config.model.layers):
            for name in ("W1", "W2"):
                weight = TensorRef(name, layer)
                tensors[weight] = self.inputs.weight(weight)[local_slices(self.config, weight, gpu)].copy()
        return tensors

    def run(self) -> Result:
        """Run every step and return the final state."""
        for index in range(len(self.schedule.steps)):
            self.run_step(index)
        return Result(self.config, self.tensors, self.losses, self.inputs)

    def run_step(self, index: int) -> None:
        """Run step ``index`` (steps must be run in order)."""
        self._index = index
        for event in step_events(self.schedule, index):
            if event[0].is_collective:
                self._collective[event[0].kind](event)
            elif event[0].kind == OpKind.FREE:
                self._free(event[0])
            else:
                self._run_compute(event[0])

    # Local ops.

    def _fail(self, op: Op, reason: str) -> ExecutionError:
        return ExecutionError(f"step {self._index}: GPU {op.gpu}: {op}: {reason}")

    def _run_compute(self, op: Op) -> None:
        key = (op.kind, op.tensor.name, op.tensor.grad)
        if key not in self._compute:
            raise self._fail(op, "the executor has no rule for this op")
        if op.tensor.microbatch is not None:
            raise self._fail(op, "microbatches are not supported yet")
        self.tensors[op.gpu][op.tensor] = self._compute[key](op)

    def _free(self, op: Op) -> None:
        if self.tensors[op.gpu].pop(op.tensor, None) is None:
            raise self._fail(op, f"{op.tensor} is not held")

    def _get(self, op: Op, name: str, layer: int, grad: bool = False) -> np.ndarray:
        """An operand of ``op``, which must be declared in ``op.reads`` and held by its GPU."""
        tensor = TensorRef(name, layer, grad, op.tensor.microbatch)
        if tensor not in op.reads:
            raise self._fail(op, f"needs {tensor}, which is not among its reads")
        if tensor not in self.tensors[op.gpu]:
            raise self._fail(op, f"needs {tensor}, which is not held")
        return self.tensors[op.gpu][tensor]

    def _adds_residual(self, op: Op) -> bool:
        """A partial sum carries the residual on tensor-parallel rank 0 only, so the all-reduce adds it once."""
        return not op.partial or self.config.coords(op.gpu)[1] == 0

    def _load(self, op: Op) -> np.ndarray:
        if op.tensor.layer != 0:
            raise self._fail(op, "only x[0] can be loaded")
        return self.inputs.x[local_slices(self.config, op.tensor, op.gpu)].copy()

    def _forward_h(self, op: Op) -> np.ndarray:
        layer = op.tensor.layer
        return _relu(self._get(op, "x", layer) @ self._get(op, "W1", layer))

    def _forward_x(self, op: Op) -> np.ndarray:
        layer = op.tensor.layer - 1
        out = self._get(op, "h", layer) @ self._get(op, "W2", layer)
        return out + self._get(op, "x", layer) if self._adds_residual(op) else out

    def _loss(self, op: Op) -> np.ndarray:
        if op.tensor.layer != self.config.model.layers:
            raise self._fail(op, f"the loss is taken at x[{self.config.model.layers}]")
        x = self._get(op, "x", op.tensor.layer)
        diff = x - self.inputs.y[local_slices(self.config, op.tensor, op.gpu)]
        self.losses[op.gpu] = 0.5 * float(np.sum(diff**2)) / self.config.local_batch
        return diff / self.config.local_batch

    def _backward_h(self, op: Op) -> np.ndarray:
        layer = op.tensor.layer
        grad_out = self._get(op, "x", layer + 1, grad=True) @ self._get(op, "W2", layer).T
        return grad_out * (self._get(op, "h", layer) > 0)

    def _backward_x(self, op: Op) -> np.ndarray:
        layer = op.tensor.layer
        out = self._get(op, "h", layer, grad=True) @ self._get(op, "W1", layer).T
        return out + self._get(op, "x", layer + 1, grad=True) if self._adds_residual(op) else out

    def _grad_w2(self, op: Op) -> np.ndarray:
        layer = op.tensor.layer
        return self._get(op, "h", layer).T @ self._get(op, "x", layer + 1, grad=True)

    def _grad_w1(self, op: Op) -> np.ndarray:
        layer = op.tensor.layer
        return self._get(op, "x", layer).T @ self._get(op, "h", layer, grad=True)

    # Collectives: ``event`` holds the op of every group member, in group order.

    def _held(self, event: tuple[Op, ...]) -> list[np.ndarray]:
        missing = [op for op in event if op.tensor not in self.tensors[op.gpu]]
        if missing:
            raise self._fail(missing[0], f"{missing[0].tensor} is not held")
        return [self.tensors[op.gpu][op.tensor] for op in event]

    def _reduce(self, event: tuple[Op, ...]) -> np.ndarray:
        arrays = self._held(event)
        total = arrays[0].copy()
        for array in arrays[1:]:
            total += array
        return total / len(arrays) if event[0].reduce == "mean" else total

    def _shard_axis(self, op: Op) -> int:
        """The axis along which the group's members hold different shards of ``op.tensor``."""
        spans = [local_slices(self.config, op.tensor, m) for m in op.group]
        axes = [a for a in (0, 1) if len({(s[a].start, s[a].stop) for s in spans}) > 1]
        if len(axes) != 1:
            raise self._fail(op, f"{op.tensor} is not split along one axis across group {op.group}")
        return axes[0]

    def _all_reduce(self, event: tuple[Op, ...]) -> None:
        total = self._reduce(event)
        for op in event:
            self.tensors[op.gpu][op.tensor] = total.copy()

    def _all_gather(self, event: tuple[Op, ...]) -> None:
        whole = np.concatenate(self._held(event), axis=self._shard_axis(event[0]))
        for op in event:
            self.tensors[op.gpu][op.tensor] = whole.copy()

    def _reduce_scatter(self, event: tuple[Op, ...]) -> None:
        total, axis = self._reduce(event), self._shard_axis(event[0])
        if total.shape[axis] % len(event):
            raise self._fail(event[0], f"axis {axis} of {event[0].tensor} does not split {len(event)} ways")
        for op, part in zip(event, np.split(total, len(event), axis=axis)):
            self.tensors[op.gpu][op.tensor] = part.copy()

    def _send_recv(self, event: tuple[Op, ...]) -> None:
        sender, receiver = event
        self.tensors[receiver.gpu][receiver.tensor] = self._held((sender,))[0].copy()


def execute(schedule: Schedule, seed: int = 0) -> Result:
    """Run ``schedule`` on random data from ``seed`` (without checking it first).

    Examples
    --------
    >>> from parallelviz import ModelConfig, ParallelConfig, RunConfig, build_schedule
    >>> config = RunConfig(ModelConfig(layers=2), ParallelConfig(dp=2, tp=2))
    >>> result = execute(build_schedule(config), seed=1)
    >>> abs(result.loss - reference(config, seed=1)[0]) < 1e-12
    True
    """
    return Executor(schedule, seed).run()


@dataclass(frozen=True)
class Verification:
    """How far an execution is from the single-device reference.

    Parameters
    ----------
    ok
        True when every error is at most ``tolerance``.
    max_abs_error
        Largest of the errors below.
    loss_error
        ``|loss - reference_loss|``.
    grad_error
        Largest absolute error of any weight gradient of any data-parallel replica
        (``inf`` when a gradient is missing or has the wrong shape).
    replica_error
        Largest difference between data-parallel replicas' gradients, or between
        GPUs holding the same shard.
    loss, reference_loss
        The executed and the reference loss.
    errors
        Gradient error per weight gradient, by name (``"dW1[0]"``).
    tolerance
        The tolerance used.
    """

    ok: bool
    max_abs_error: float
    loss_error: float
    grad_error: float
    replica_error: float
    loss: float
    reference_loss: float
    errors: dict[str, float] = field(default_factory=dict)
    tolerance: float = TOLERANCE


def _max_abs(a: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float("inf") if np.isnan(a).any() else float(np.max(np.abs(a)))


def _assemble(result: Result, tensor: TensorRef, dp_index: int) -> tuple[np.ndarray, float]:
    """A replica's full-size ``tensor`` from its tensor-parallel shards (NaN where none is held).

    Returns
    -------
    full, disagreement
        The assembled tensor, and the largest difference between GPUs holding the
        same elements.
    """
    config = result.config
    full = np.full(full_shape(config, tensor), np.nan)
    disagreement = 0.0
    for t in range(config.parallel.tp):
        gpu = config.rank(dp_index, t)
        array = result.tensors[gpu].get(tensor)
        if array is None:
            continue
        if array.shape == local_shape(config, tensor, gpu):
            region = local_slices(config, tensor, gpu)
        elif array.shape == full.shape:
            region = (slice(None), slice(None))
        else:
            continue
        known = ~np.isnan(full[region])
        disagreement = max(disagreement, _max_abs(full[region][known] - array[known]))
        full[region] = array
    return full, disagreement


def verify(schedule: Schedule, seed: int = 0, tolerance: float = TOLERANCE) -> Verification:
    """Check ``schedule``, run it, and compare its loss and weight gradients with :func:`reference`.

    Raises
    ------
    parallelviz.checker.ScheduleError
        If the schedule fails :func:`parallelviz.checker.check`.

    Examples
    --------
    >>> from parallelviz import ModelConfig, ParallelConfig, RunConfig, build_schedule
    >>> verify(build_schedule(RunConfig(ModelConfig(layers=2), ParallelConfig(dp=2, tp=2)))).ok
    True
    """
    check(schedule)
    result = execute(schedule, seed)
    reference_loss, reference_grads = reference(schedule.config, seed)
    errors: dict[str, float] = {}
    replica_error = 0.0
    for tensor, expected in reference_grads.items():
        replicas = [_assemble(result, tensor, d) for d in range(schedule.config.parallel.dp)]
        errors[str(tensor)] = max(_max_abs(full - expected) for full, _ in replicas)
        for full, disagreement in replicas:
            replica_error = max(replica_error, disagreement, _max_abs(full - replicas[0][0]))
    loss_error = abs(result.loss - reference_loss)
    loss_error = float("inf") if np.isnan(loss_error) else loss_error
    grad_error = max(errors.values(), default=0.0)
    max_abs_error = max(loss_error, grad_error, replica_error)
    return Verification(
        ok=bool(max_abs_error <= tolerance),
        max_abs_error=max_abs_error,
        loss_error=loss_error,
        grad_error=grad_error,
        replica_error=replica_error,
        loss=result.loss,
        reference_loss=reference_loss,
        errors=dict(sorted(errors.items())),
        tolerance=tolerance,
    )

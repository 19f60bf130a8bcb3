"""Data-parallel x tensor-parallel (Megatron MLP) forward/backward schedule, in the seed's order."""

from __future__ import annotations

from typing import Callable

from parallelviz.config import RunConfig
from parallelviz.schedule import Op, OpKind, Schedule, Step, TensorRef

__all__ = ["build_dp_tp"]

OpsFor = Callable[[int], list[Op]]


def _x(layer: int, grad: bool = False) -> TensorRef:
    return TensorRef("x", layer, grad)


def _h(layer: int, grad: bool = False) -> TensorRef:
    return TensorRef("h", layer, grad)


def _w(which: int, layer: int, grad: bool = False) -> TensorRef:
    return TensorRef(f"W{which}", layer, grad)


class _Groups:
    """Tensor- and data-parallel process groups of each rank."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def tp(self, rank: int) -> tuple[int, ...]:
        d, _ = self.config.coords(rank)
        return tuple(self.config.rank(d, t) for t in range(self.config.parallel.tp))

    def dp(self, rank: int) -> tuple[int, ...]:
        _, t = self.config.coords(rank)
        return tuple(self.config.rank(d, t) for d in range(self.config.parallel.dp))


def build_dp_tp(config: RunConfig) -> Schedule:
    """Forward and backward pass of every GPU of a DP x TP grid, in lockstep.

    The order is the seed notebook's: ``x^0`` arrives; for each block ``h^l`` then
    ``x^{l+1}``; then the loss gradient ``dx^L``; for each block from the last:
    ``dh^l``, ``dW2^l`` (``x^{l+1}`` freed), ``dx^l`` (``dx^{l+1}`` freed, its last
    reader), ``dW1^l`` (``h^l`` freed); finally ``x^0`` is freed.

    Communication is where Megatron-LM and PyTorch DDP put it:

    - ``tp > 1``: ``W2``'s output is a partial sum, completed by an all-reduce over
      the TP group in its own step; ``W1``'s input gradient likewise, its all-reduce
      overlapping the weight-gradient matmul ``dW1^l`` that does not need it.
    - ``dp > 1``: every weight gradient is averaged over the DP group, either all
      at the end (``grad_sync="end"``) or each in the step after it is produced
      (``grad_sync="overlap"``).
    """
    layers = config.model.layers
    tp, dp = config.parallel.tp, config.parallel.dp
    overlap = config.parallel.grad_sync == "overlap"
    groups = _Groups(config)
    steps: list[Step] = []
    pending_sync: list[TensorRef] = []  # weight gradients produced in the previous step

    def dp_sync(rank: int, grads: list[TensorRef]) -> list[Op]:
        if dp == 1:
            return []
        return [Op(rank, OpKind.ALL_REDUCE, g, reads=(g,), group=groups.dp(rank), reduce="mean") for g in grads]

    def emit(phase: str, ops_for: OpsFor, produced_grads: tuple[TensorRef, ...] = ()) -> None:
        nonlocal pending_sync
        sync_now = pending_sync if overlap else []
        ops = [op for rank in range(config.parallel.world_size) for op in ops_for(rank) + dp_sync(rank, sync_now)]
        steps.append(Step(tuple(ops), phase))
        pending_sync = list(produced_grads)

    def tp_all_reduce(tensor: TensorRef) -> OpsFor:
        return lambda rank: [Op(rank, OpKind.ALL_REDUCE, tensor, reads=(tensor,), group=groups.tp(rank), reduce="sum")]

    # Forward pass.
    emit("forward", lambda r: [Op(r, OpKind.LOAD, _x(0))])
    for l in range(layers):
        emit("forward", lambda r, l=l: [Op(r, OpKind.FORWARD, _h(l), reads=(_x(l), _w(1, l)))])
        emit(
            "forward",
            lambda r, l=l: [Op(r, OpKind.FORWARD, _x(l + 1), reads=(_h(l), _w(2, l), _x(l)), partial=tp > 1)],
        )
        if tp > 1:
            emit("forward", tp_all_reduce(_x(l + 1)))

    # Backward pass.
    emit("backward", lambda r: [Op(r, OpKind.LOSS, _x(layers, True), reads=(_x(layers),))])
    for l in reversed(range(layers)):
        g = _x(l + 1, True)
        emit("backward", lambda r, l=l, g=g: [Op(r, OpKind.BACKWARD_INPUT, _h(l, True), reads=(g, _w(2, l), _h(l)))])
        emit(
            "backward",
            lambda r, l=l, g=g: [
                Op(r, OpKind.BACKWARD_WEIGHT, _w(2, l, True), reads=(_h(l), g)),
                Op(r, OpKind.FREE, _x(l + 1)),
            ],
            produced_grads=(_w(2, l, True),),
        )
        emit(
            "backward",
            lambda r, l=l, g=g: [
                Op(r, OpKind.BACKWARD_INPUT, _x(l, True), reads=(g, _h(l, True), _w(1, l)), partial=tp > 1),
                Op(r, OpKind.FREE, g),
            ],
        )
        emit(
            "backward",
            lambda r, l=l: [
                Op(r, OpKind.BACKWARD_WEIGHT, _w(1, l, True), reads=(_x(l), _h(l, True))),
                Op(r, OpKind.FREE, _h(l)),
                Op(r, OpKind.FREE, _h(l, True)),
            ]
            + (tp_all_reduce(_x(l, True))(r) if tp > 1 else []),
            produced_grads=(_w(1, l, True),),
        )
    emit("backward", lambda r: [Op(r, OpKind.FREE, _x(0)), Op(r, OpKind.FREE, _x(0, True))])

    if dp > 1 and not overlap:
        grads = [_w(i, l, True) for l in range(layers) for i in (1, 2)]
        emit("gradient sync", lambda r: dp_sync(r, grads))
    return Schedule(config, tuple(steps), name="dp_tp")

"""Hand-written schedules for tests: ops from their string form, schedules from lists of steps."""

from __future__ import annotations

import re

from parallelviz import ModelConfig, Op, OpKind, ParallelConfig, RunConfig, Schedule, Step, TensorRef, build_schedule

__all__ = ["op", "make", "config_of", "build"]

_OP_RE = re.compile(r"^(?P<kind>\S+) (?P<tensor>[^~{]+)(?P<partial>~?)(?:\{(?P<group>[\d,]*)\})?$")
_READS_OWN_TENSOR = (OpKind.ALL_REDUCE, OpKind.ALL_GATHER, OpKind.REDUCE_SCATTER, OpKind.SEND)
_REDUCING = (OpKind.ALL_REDUCE, OpKind.REDUCE_SCATTER)


def op(gpu: int, text: str, reads: str = "", reduce: str = "") -> Op:
    """An op from its string form (``"AR x[1]{0,1}"``, ``"F x[1]~"``) plus reads (``"x[0] W1[0]"``).

    Collectives other than RECV read their own tensor unless ``reads`` is given; AR and RS
    reduce by sum unless ``reduce`` is given.
    """
    match = _OP_RE.match(text)
    assert match, text
    kind, tensor = OpKind(match["kind"]), TensorRef.from_str(match["tensor"])
    group = tuple(int(g) for g in match["group"].split(",")) if match["group"] else ()
    read_refs = tuple(TensorRef.from_str(r) for r in reads.split())
    if kind in _READS_OWN_TENSOR and not reads:
        read_refs = (tensor,)
    if kind in _REDUCING and not reduce:
        reduce = "sum"
    return Op(gpu, kind, tensor, read_refs, group, reduce, bool(match["partial"]))


def make(config: RunConfig, steps: list[list[Op]]) -> Schedule:
    """A schedule named ``"test"`` with one step (phase ``"forward"``) per list of ops."""
    return Schedule(config, tuple(Step(tuple(ops)) for ops in steps), name="test")


def config_of(dp: int = 1, tp: int = 1, layers: int = 1, grad_sync: str = "end", **model: int) -> RunConfig:
    """A run config: the default model but for ``layers`` and ``model``, and the given parallelism."""
    return RunConfig(ModelConfig(layers=layers, **model), ParallelConfig(dp=dp, tp=tp, grad_sync=grad_sync))


def build(dp: int = 1, tp: int = 1, layers: int = 1, grad_sync: str = "end", **model: int) -> Schedule:
    """The builder's schedule for :func:`config_of` with the same arguments."""
    return build_schedule(config_of(dp, tp, layers, grad_sync, **model))

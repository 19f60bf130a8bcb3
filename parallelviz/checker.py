"""Schedule checker: simulates which tensors are live on each GPU and rejects impossible schedules."""

from __future__ import annotations

from typing import Iterator

from parallelviz.schedule import Op, OpKind, Schedule, TensorRef

__all__ = ["ScheduleError", "LiveSet", "Liveness", "check", "live_tensors", "step_events"]

LiveSet = dict[TensorRef, bool]
"""The tensors live on one GPU, each mapped to True when it is a partial sum."""

_POINT_TO_POINT = (OpKind.SEND, OpKind.RECV)
_REDUCING = (OpKind.ALL_REDUCE, OpKind.REDUCE_SCATTER)


class ScheduleError(ValueError):
    """A schedule that cannot run; its text is the reason, then the grid with the bad step marked.

    Parameters
    ----------
    reason
        One line saying what is wrong.
    step
        Index of the step where it goes wrong.
    schedule
        The schedule, printed as a grid under the reason.
    """

    def __init__(self, reason: str, step: int, schedule: Schedule) -> None:
        self.reason = reason
        self.step = step
        self.schedule = schedule
        super().__init__(f"{reason}\n{schedule.format_grid(mark_step=step, message=reason)}")


def _expected_partner(op: Op, member: int) -> Op:
    """The op ``member`` must run for ``op`` to complete (in a SEND/RECV pair, group[0] sends)."""
    kind = op.kind
    if op.kind in _POINT_TO_POINT:
        kind = OpKind.SEND if member == op.group[0] else OpKind.RECV
    reads = (op.tensor,) if kind == OpKind.SEND else ()
    return Op(member, kind, op.tensor, reads=reads, group=op.group, reduce=op.reduce)


def _matches(op: Op, expected: Op) -> bool:
    return (op.kind, op.tensor, op.group, op.reduce) == (
        expected.kind,
        expected.tensor,
        expected.group,
        expected.reduce,
    )


def _validate_op(op: Op, world_size: int) -> str:
    """Why ``op`` is malformed on its own, or ``''``."""
    if not 0 <= op.gpu < world_size:
        return f"{op} runs on GPU {op.gpu}, but the schedule has {world_size} GPUs"
    if not op.is_collective:
        return ""
    group = op.group
    if len(set(group)) != len(group) or any(not 0 <= m < world_size for m in group):
        return f"GPU {op.gpu}: {op} has an invalid group {group} (ranks must be distinct, in 0..{world_size - 1})"
    if op.gpu not in group:
        return f"GPU {op.gpu}: {op}, but GPU {op.gpu} is not in its group {group}"
    if op.kind in _POINT_TO_POINT:
        if len(group) != 2 or group[op.kind == OpKind.RECV] != op.gpu:
            return f"GPU {op.gpu}: {op} needs group (sender, receiver) with GPU {op.gpu} as {op.kind.name.lower()}er"
    if op.kind in _REDUCING and op.reduce not in ("sum", "mean"):
        return f"GPU {op.gpu}: {op} must reduce by 'sum' or 'mean' (got {op.reduce!r})"
    return ""


def step_events(schedule: Schedule, index: int) -> list[tuple[Op, ...]]:
    """The ops of step ``index`` in the order they can run, with collectives as blocking rendezvous.

    Each GPU runs its ops in list order; a collective waits until every member of
    its group has reached its matching op (``SEND`` matches ``RECV``), then runs
    for all of them at once.

    Returns
    -------
    list of tuple of Op
        Events in execution order: ``(op,)`` for a local op, or the ops of every
        group member, in group order, for a collective.

    Raises
    ------
    ScheduleError
        An op is malformed, a group member has no matching op, or the collectives
        are ordered differently on different GPUs (a deadlock).
    """
    step = schedule.steps[index]
    for op in step.ops:
        reason = _validate_op(op, schedule.world_size)
        if reason:
            raise ScheduleError(reason, index, schedule)
    queues = {gpu: list(step.on_gpu(gpu)) for gpu in range(schedule.world_size)}
    position = dict.fromkeys(queues, 0)
    events: list[tuple[Op, ...]] = []

    def current(gpu: int) -> Op | None:
        return queues[gpu][position[gpu]] if position[gpu] < len(queues[gpu]) else None

    while any(current(gpu) is not None for gpu in queues):
        progress = False
        for gpu in queues:
            while (op := current(gpu)) is not None and not op.is_collective:
                events.append((op,))
                position[gpu] += 1
                progress = True
        for gpu in queues:
            op = current(gpu)
            if op is None or not op.is_collective:
                continue
            members = [current(m) for m in op.group]
            if all(m is not None and _matches(m, _expected_partner(op, m.gpu)) for m in members):
                events.append(tuple(members))  # type: ignore[arg-type]
                for m in op.group:
                    position[m] += 1
                progress = True
        if not progress:
            raise ScheduleError(_deadlock_reason(queues, position), index, schedule)
    return events


def _deadlock_reason(queues: dict[int, list[Op]], position: dict[int, int]) -> str:
    """Name the GPU that keeps a waiting collective from completing: one lacking its part, else one out of order."""
    waiting = [queue[position[gpu]] for gpu, queue in queues.items() if position[gpu] < len(queue)]
    for op in waiting:
        for member in op.group:
            expected = _expected_partner(op, member)
            if not any(_matches(other, expected) for other in queues[member][position[member] :]):
                return f"GPU {member} has no matching {expected} in this step (GPU {op.gpu} runs {op})"
    for op in waiting:
        for member in op.group:
            blocker = queues[member][position[member]]
            if not _matches(blocker, _expected_partner(op, member)):
                return (
                    f"GPU {member} runs {blocker} before its part of {op} (GPU {op.gpu} waits): "
                    "collectives in a different order on different GPUs deadlock"
                )
    return "deadlock"  # unreachable: with no progress, some waiting collective has a missing or busy member


class Liveness:
    """Walks a schedule step by step, tracking the live tensors of every GPU.

    This is the one simulation the checker, the renderer and the cost model share.
    Initially every GPU holds its shard of ``W1[l]`` and ``W2[l]`` for every layer.
    Iterating yields ``(step index, live sets)`` after each step; the live sets are
    copies, one :data:`LiveSet` per GPU.

    Parameters
    ----------
    schedule
        The schedule to walk.

    Raises
    ------
    ScheduleError
        While iterating, at the first op that cannot run.

    Examples
    --------
    >>> from parallelviz import ModelConfig, ParallelConfig, RunConfig, build_schedule
    >>> schedule = build_schedule(RunConfig(ModelConfig(layers=1), ParallelConfig(dp=1, tp=2)))
    >>> states = dict(Liveness(schedule))
    >>> [str(t) for t, partial in states[2][0].items() if partial]
    ['x[1]']
    >>> states[3][0][TensorRef("x", 1)]
    False
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        weights = [TensorRef(w, layer) for layer in range(schedule.config.model.layers) for w in ("W1", "W2")]
        self.live: list[LiveSet] = [dict.fromkeys(weights, False) for _ in range(schedule.world_size)]
        self.written: dict[tuple[int, TensorRef], int] = {}
        self._index = -1

    def __iter__(self) -> Iterator[tuple[int, list[LiveSet]]]:
        for index in range(len(self.schedule.steps)):
            self._index = index
            for event in step_events(self.schedule, index):
                for op in event:
                    self._apply(op, event)
            yield index, [dict(live) for live in self.live]

    def _fail(self, reason: str) -> None:
        raise ScheduleError(reason, self._index, self.schedule)

    def _require_live(self, op: Op, tensor: TensorRef, verb: str) -> None:
        if tensor not in self.live[op.gpu]:
            self._fail(f"GPU {op.gpu}: {op} {verb} {tensor}, which is not live on GPU {op.gpu}")

    def _write(self, gpu: int, tensor: TensorRef, partial: bool) -> None:
        self.live[gpu][tensor] = partial
        self.written[gpu, tensor] = self._index

    def _apply(self, op: Op, event: tuple[Op, ...]) -> None:
        live = self.live[op.gpu]
        for tensor in op.reads:
            self._require_live(op, tensor, "reads")
            if live[tensor] and not (op.is_collective and tensor == op.tensor):
                self._fail(f"GPU {op.gpu}: {op} reads {tensor}, a partial sum not yet reduced")
        if op.is_compute or op.kind == OpKind.LOAD or op.kind == OpKind.RECV:
            if op.tensor in live:
                self._fail(f"GPU {op.gpu}: {op} writes {op.tensor}, which is already live on GPU {op.gpu}")
            self._write(op.gpu, op.tensor, op.partial or self._sent_partial(op, event))
        elif op.kind == OpKind.FREE:
            self._require_live(op, op.tensor, "frees")
            del live[op.tensor]
        elif op.is_collective:
            self._require_live(op, op.tensor, "moves")
            if op.kind in _REDUCING:
                self._write(op.gpu, op.tensor, False)

    def _sent_partial(self, op: Op, event: tuple[Op, ...]) -> bool:
        """For a RECV, whether the tensor sent is a partial sum."""
        if op.kind != OpKind.RECV:
            return False
        sender = event[0].gpu
        return self.live[sender].get(op.tensor, False)


def live_tensors(schedule: Schedule) -> list[list[LiveSet]]:
    """The live tensors of every GPU after each step: ``result[step][gpu]`` maps tensor to partial flag.

    Raises
    ------
    ScheduleError
        If an op cannot run (see :func:`check`).
    """
    return [state for _, state in Liveness(schedule)]


def check(schedule: Schedule) -> None:
    """Raise :class:`ScheduleError` unless ``schedule`` can run as written.

    Rules, simulated per GPU with its ops of a step in list order: every tensor an
    op reads is live and complete (a collective may read its own partial tensor);
    a load or compute op writes a tensor that is not yet live; a free frees a live
    tensor; every member of a collective's group runs the matching op in the same
    step; at the end only weights and weight gradients are live, none partial.

    Examples
    --------
    >>> from parallelviz import ModelConfig, ParallelConfig, RunConfig, build_schedule
    >>> check(build_schedule(RunConfig(ModelConfig(layers=2), ParallelConfig(dp=2, tp=2))))
    """
    liveness = Liveness(schedule)
    for _ in liveness:
        pass
    _check_end(schedule, liveness)


def _check_end(schedule: Schedule, liveness: Liveness) -> None:
    dangling = [(gpu, t) for gpu, live in enumerate(liveness.live) for t in live if not t.is_weight]
    if dangling:
        gpu, tensor = min(dangling, key=lambda item: (liveness.written[item], item[0]))
        step = liveness.written[gpu, tensor]
        more = f" (+{len(dangling) - 1} more)" if len(dangling) > 1 else ""
        reason = f"dangling at end of schedule: {tensor} on GPU {gpu} (written at step {step}) is never freed{more}"
        raise ScheduleError(reason, step, schedule)
    for gpu, live in enumerate(liveness.live):
        for tensor, partial in live.items():
            if partial:
                step = liveness.written[gpu, tensor]
                reason = f"{tensor} on GPU {gpu} is still a partial sum at end of schedule (written at step {step})"
                raise ScheduleError(reason, step, schedule)

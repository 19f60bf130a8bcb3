"""Cost model of a schedule: FLOPs, bytes each GPU sends, and bytes resident per GPU after every step."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable

from parallelviz.checker import Liveness
from parallelviz.config import _require_positive_ints
from parallelviz.schedule import Op, OpKind, Schedule, TensorRef
from parallelviz.shapes import local_elements, local_shape

__all__ = [
    "ByteSizes",
    "CommBytes",
    "MemoryBreakdown",
    "OpCost",
    "GpuCosts",
    "Costs",
    "compute_costs",
    "matmul_flops",
    "comm_bytes_sent",
    "format_bytes",
    "format_flops",
]


# ---------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class ByteSizes:
    """Bytes per element of each kind of tensor.

    The defaults are mixed-precision Adam (ZeRO paper, Rajbhandari et al. 2020, section 3.1): fp16
    parameters and gradients (2 + 2 bytes), and an fp32 master copy, momentum and variance
    (4 + 4 + 4 = 12 bytes of optimizer state per parameter); fp16 activations.

    Parameters
    ----------
    param
        Bytes per parameter (weight element).
    grad
        Bytes per weight-gradient element.
    optimizer
        Bytes of optimizer state per parameter.
    activation
        Bytes per activation element (``x``, ``h`` and their gradients, partial sums included).

    Examples
    --------
    >>> ByteSizes().param, ByteSizes().optimizer
    (2, 12)
    >>> ByteSizes(grad=0)
    Traceback (most recent call last):
    ...
    parallelviz.config.ConfigError: grad must be a positive integer (got 0)
    """

    param: int = 2
    grad: int = 2
    optimizer: int = 12
    activation: int = 2

    def __post_init__(self) -> None:
        _require_positive_ints(self)

    def of(self, tensor: TensorRef) -> int:
        """Bytes per element of ``tensor``: parameter, gradient or activation bytes.

        Examples
        --------
        >>> ByteSizes(activation=4).of(TensorRef("h", 0, grad=True))
        4
        """
        if not tensor.is_weight:
            return self.activation
        return self.grad if tensor.grad else self.param


@dataclass(frozen=True)
class CommBytes:
    """Bytes one GPU sends, by kind of collective (``send_recv``: point-to-point sends)."""

    all_reduce: int = 0
    all_gather: int = 0
    reduce_scatter: int = 0
    send_recv: int = 0

    @property
    def total(self) -> int:
        """Bytes sent over all kinds."""
        return self.all_reduce + self.all_gather + self.reduce_scatter + self.send_recv

    def __add__(self, other: CommBytes) -> CommBytes:
        return CommBytes(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def to_json(self) -> dict[str, int]:
        """The four counters as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes resident on one GPU at one moment, by category.

    Examples
    --------
    >>> MemoryBreakdown(params=4, grads=4, optimizer=24, activations=8).total
    40
    """

    params: int = 0
    grads: int = 0
    optimizer: int = 0
    activations: int = 0

    @property
    def total(self) -> int:
        """Bytes over all categories."""
        return self.params + self.grads + self.optimizer + self.activations

    def to_json(self) -> dict[str, int]:
        """The four categories as a dict (without the total)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class OpCost:
    """What one op costs the GPU that runs it.

    Parameters
    ----------
    step
        Index of the step the op is in.
    op
        The op.
    flops
        Matmul FLOPs (``2*m*k*n``); 0 for everything else.
    comm_bytes
        Bytes this GPU sends for the op (ring algorithm); 0 for non-communication ops.
    """

    step: int
    op: Op
    flops: int = 0
    comm_bytes: int = 0


@dataclass(frozen=True)
class GpuCosts:
    """Costs of one GPU over a whole schedule.

    Parameters
    ----------
    gpu
        Global rank.
    flops
        Matmul FLOPs over the schedule.
    comm
        Bytes sent over the schedule, by kind.
    initial_memory
        Bytes resident before the first step (the weights and their optimizer state).
    memory_timeline
        Bytes resident after each step.
    flops_timeline
        FLOPs so far, after each step (cumulative).
    comm_timeline
        Bytes sent so far, after each step (cumulative, all kinds).
    """

    gpu: int
    flops: int
    comm: CommBytes
    initial_memory: MemoryBreakdown
    memory_timeline: tuple[MemoryBreakdown, ...]
    flops_timeline: tuple[int, ...]
    comm_timeline: tuple[int, ...]

    @property
    def peak_step(self) -> int:
        """First step after which resident memory is largest (-1 for an empty schedule)."""
        if not self.memory_timeline:
            return -1
        totals = [m.total for m in self.memory_timeline]
        return totals.index(max(totals))

    @property
    def peak_memory(self) -> MemoryBreakdown:
        """Breakdown after ``peak_step`` (the initial state for an empty schedule)."""
        if not self.memory_timeline:
            return self.initial_memory
        return self.memory_timeline[self.peak_step]

    @property
    def peak_memory_bytes(self) -> int:
        """Largest resident memory after any step."""
        return self.peak_memory.total

    def to_json(self) -> dict:
        """The per-GPU entry of :meth:`Costs.to_json`."""
        return {
            "gpu": self.gpu,
            "flops": self.flops,
            "comm_bytes": self.comm.to_json(),
            "comm_bytes_total": self.comm.total,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory": self.peak_memory.to_json(),
            "peak_step": self.peak_step,
        }


@dataclass(frozen=True)
class Costs:
    """Costs of a schedule, per GPU and in total, with running counters for on-screen display.

    Parameters
    ----------
    schedule_name
        The builder that made the schedule.
    params
        Parameters of the whole model.
    sizes
        Bytes per element used.
    steps
        Number of steps of the schedule.
    per_gpu
        Costs of each GPU, indexed by rank.
    op_costs
        Cost of every op, in schedule order (``OpCost`` with the step index).
    """

    schedule_name: str
    params: int
    sizes: ByteSizes
    steps: int
    per_gpu: tuple[GpuCosts, ...]
    op_costs: tuple[OpCost, ...]

    # Per-GPU views, indexed ``[gpu]`` or ``[gpu][step]``.

    @property
    def memory_timeline(self) -> tuple[tuple[MemoryBreakdown, ...], ...]:
        """``memory_timeline[gpu][step]``: bytes resident on ``gpu`` after ``step``."""
        return tuple(g.memory_timeline for g in self.per_gpu)

    @property
    def initial_memory(self) -> tuple[MemoryBreakdown, ...]:
        """``initial_memory[gpu]``: bytes resident before the first step."""
        return tuple(g.initial_memory for g in self.per_gpu)

    @property
    def flops_timeline(self) -> tuple[tuple[int, ...], ...]:
        """``flops_timeline[gpu][step]``: FLOPs ``gpu`` has done up to and including ``step``."""
        return tuple(g.flops_timeline for g in self.per_gpu)

    @property
    def comm_timeline(self) -> tuple[tuple[int, ...], ...]:
        """``comm_timeline[gpu][step]``: bytes ``gpu`` has sent up to and including ``step``."""
        return tuple(g.comm_timeline for g in self.per_gpu)

    @property
    def peak_memory_bytes(self) -> tuple[int, ...]:
        """``peak_memory_bytes[gpu]``: largest resident memory after any step."""
        return tuple(g.peak_memory_bytes for g in self.per_gpu)

    @property
    def peak_step(self) -> tuple[int, ...]:
        """``peak_step[gpu]``: first step reaching ``peak_memory_bytes[gpu]``."""
        return tuple(g.peak_step for g in self.per_gpu)

    @property
    def peak_memory(self) -> tuple[MemoryBreakdown, ...]:
        """``peak_memory[gpu]``: breakdown at ``peak_step[gpu]``."""
        return tuple(g.peak_memory for g in self.per_gpu)

    @property
    def total_flops(self) -> int:
        """FLOPs of all GPUs."""
        return sum(g.flops for g in self.per_gpu)

    @property
    def total_comm(self) -> CommBytes:
        """Bytes sent by all GPUs, by kind."""
        return sum((g.comm for g in self.per_gpu), CommBytes())

    def to_json(self, timeline: bool = False) -> dict:
        """The costs as JSON-ready plain data.

        Parameters
        ----------
        timeline
            Also include ``timeline``: per GPU, the running counters and memory after every step.
        """
        out: dict = {
            "schedule": self.schedule_name,
            "params": self.params,
            "steps": self.steps,
            "byte_sizes": {f.name: getattr(self.sizes, f.name) for f in fields(self.sizes)},
            "per_gpu": [g.to_json() for g in self.per_gpu],
            "totals": {
                "flops": self.total_flops,
                "comm_bytes": self.total_comm.total,
                "comm_bytes_by_kind": self.total_comm.to_json(),
            },
        }
        if timeline:
            out["timeline"] = [_timeline_json(g) for g in self.per_gpu]
        return out

    def format_table(self) -> str:
        """A human-readable table: one row per GPU, then a totals line."""
        return _format_table(self)


# ---------------------------------------------------------------------------------------------------
# Per-op costs

_COMM_FIELD = {
    OpKind.ALL_REDUCE: "all_reduce",
    OpKind.ALL_GATHER: "all_gather",
    OpKind.REDUCE_SCATTER: "reduce_scatter",
    OpKind.SEND: "send_recv",
    OpKind.RECV: "send_recv",
}


def _matmul_operands(op: Op) -> tuple[tuple[TensorRef, bool], tuple[TensorRef, bool]] | None:
    """The two matmul operands of ``op`` as ``(tensor, transposed)``, or None if it is not a matmul."""
    t, l = op.tensor, op.tensor.layer
    F, B, W = OpKind.FORWARD, OpKind.BACKWARD_INPUT, OpKind.BACKWARD_WEIGHT

    def act(name: str, layer: int, grad: bool = False) -> TensorRef:
        return TensorRef(name, layer, grad, t.microbatch)

    table = {
        # forward: h[l] = relu(x[l] @ W1[l]);  x[l+1] = x[l] + h[l] @ W2[l]
        (F, "h", False): ((act("x", l), False), (TensorRef("W1", l), False)),
        (F, "x", False): ((act("h", l - 1), False), (TensorRef("W2", l - 1), False)),
        # input gradients: dh[l] = dx[l+1] @ W2[l]^T;  dx[l] = dh[l] @ W1[l]^T (+ dx[l+1])
        (B, "h", True): ((act("x", l + 1, True), False), (TensorRef("W2", l), True)),
        (B, "x", True): ((act("h", l, True), False), (TensorRef("W1", l), True)),
        # weight gradients: dW2[l] = h[l]^T @ dx[l+1];  dW1[l] = x[l]^T @ dh[l]
        (W, "W2", True): ((act("h", l), True), (act("x", l + 1, True), False)),
        (W, "W1", True): ((act("x", l), True), (act("h", l, True), False)),
    }
    return table.get((op.kind, t.name, t.grad))


def matmul_flops(schedule: Schedule, op: Op) -> int:
    """FLOPs of ``op``: ``2*m*k*n`` for a matmul of local shapes ``(m x k) @ (k x n)``, else 0.

    Elementwise work (loss, relu, residual adds) counts 0 matmul FLOPs.

    Examples
    --------
    >>> from parallelviz.config import ModelConfig, ParallelConfig, RunConfig
    >>> from parallelviz.schedules import build_schedule
    >>> s = build_schedule(RunConfig(ModelConfig(8, 16, 64, 1), ParallelConfig(dp=2, tp=2)))
    >>> matmul_flops(s, s.steps[1].ops[0])  # F h[0]: (32 x 8) @ (8 x 8)
    4096
    """
    operands = _matmul_operands(op)
    if operands is None:
        return 0
    (a, a_t), (b, b_t) = operands
    m, k = _oriented(local_shape(schedule.config, a, op.gpu), a_t)
    k2, n = _oriented(local_shape(schedule.config, b, op.gpu), b_t)
    if k != k2:
        raise ValueError(f"inner dimensions differ in {op} on GPU {op.gpu}: ({m} x {k}) @ ({k2} x {n})")
    return 2 * m * k * n


def _oriented(shape: tuple[int, int], transposed: bool) -> tuple[int, int]:
    return (shape[1], shape[0]) if transposed else shape


def _tensor_bytes(schedule: Schedule, tensor: TensorRef, gpu: int, sizes: ByteSizes) -> int:
    return local_elements(schedule.config, tensor, gpu) * sizes.of(tensor)


def comm_bytes_sent(schedule: Schedule, op: Op, sizes: ByteSizes = ByteSizes()) -> int:
    """Bytes ``op.gpu`` sends for ``op`` under the ring algorithm (0 if ``op`` moves nothing).

    With ``n`` the group size and ``S`` the bytes of the tensor across the group (from the shapes
    each member holds when the op starts):

    - all-reduce: ``2(n-1)/n * S``, ``S`` the tensor each member holds;
    - all-gather: ``(n-1)/n * S``, ``S`` the sum of the members' pieces;
    - reduce-scatter: ``(n-1)/n * S``, ``S`` the tensor each member holds before the op;
    - send: ``S``; recv: 0 (the sender counts the bytes).

    Each fraction is rounded down to whole bytes (``2*(n-1)*S // n``), per op and per GPU.

    Examples
    --------
    >>> from parallelviz.config import ModelConfig, ParallelConfig, RunConfig
    >>> from parallelviz.schedules import build_schedule
    >>> s = build_schedule(RunConfig(ModelConfig(8, 16, 64, 1), ParallelConfig(dp=2, tp=1)))
    >>> op = s.steps[-1].ops[0]; str(op), comm_bytes_sent(s, op)  # dW1[0]: 8 x 16 x 2 B, n = 2
    ('AR dW1[0]{0,1}', 256)
    """
    t, gpu, n = op.tensor, op.gpu, len(op.group)
    if op.kind == OpKind.ALL_REDUCE:
        return 2 * (n - 1) * _tensor_bytes(schedule, t, gpu, sizes) // n
    if op.kind == OpKind.ALL_GATHER:
        whole = sum(_tensor_bytes(schedule, t, member, sizes) for member in op.group)
        return (n - 1) * whole // n
    if op.kind == OpKind.REDUCE_SCATTER:
        return (n - 1) * _tensor_bytes(schedule, t, gpu, sizes) // n
    if op.kind == OpKind.SEND:
        return _tensor_bytes(schedule, t, gpu, sizes)
    return 0


# ---------------------------------------------------------------------------------------------------
# Residency


def _memory(schedule: Schedule, live: Iterable[TensorRef], gpu: int, sizes: ByteSizes) -> MemoryBreakdown:
    params = grads = activations = 0
    for tensor in live:
        elements = local_elements(schedule.config, tensor, gpu)
        if not tensor.is_weight:
            activations += elements
        elif tensor.grad:
            grads += elements
        else:
            params += elements
    return MemoryBreakdown(
        params=params * sizes.param,
        grads=grads * sizes.grad,
        optimizer=params * sizes.optimizer,
        activations=activations * sizes.activation,
    )


# ---------------------------------------------------------------------------------------------------
# The walk


def compute_costs(schedule: Schedule, sizes: ByteSizes = ByteSizes()) -> Costs:
    """Walk ``schedule`` and count FLOPs, bytes sent and bytes resident, per GPU and step.

    Parameters
    ----------
    schedule
        The schedule, as the checker and executor see it.
    sizes
        Bytes per element of parameters, gradients, optimizer state and activations.

    Returns
    -------
    Costs
        Per-GPU totals, running counters and memory after every step, peaks and per-op costs.

    Raises
    ------
    ScheduleError
        At the first op that cannot run: residency comes from :class:`parallelviz.checker.Liveness`,
        the simulation the checker runs (the end-of-schedule rules of :func:`~parallelviz.checker.check`
        are not applied).

    Examples
    --------
    >>> from parallelviz.config import ModelConfig, ParallelConfig, RunConfig
    >>> from parallelviz.schedules import build_schedule
    >>> costs = compute_costs(build_schedule(RunConfig(ModelConfig(8, 16, 64, 6), ParallelConfig(dp=2))))
    >>> costs.total_flops == 6 * costs.params * 64
    True
    >>> costs.peak_step[0], costs.peak_memory[0]
    (14, MemoryBreakdown(params=3072, grads=0, optimizer=18432, activations=11264))
    """
    world = schedule.world_size
    liveness = Liveness(schedule)  # resident tensors: the checker's simulation, weights resident at the start
    initial = tuple(_memory(schedule, live, g, sizes) for g, live in enumerate(liveness.live))
    flops, comm = [0] * world, [CommBytes() for _ in range(world)]
    memory_tl: list[list[MemoryBreakdown]] = [[] for _ in range(world)]
    flops_tl: list[list[int]] = [[] for _ in range(world)]
    comm_tl: list[list[int]] = [[] for _ in range(world)]
    op_costs: list[OpCost] = []

    for index, live in liveness:
        for op in schedule.steps[index].ops:
            cost = OpCost(index, op, matmul_flops(schedule, op), comm_bytes_sent(schedule, op, sizes))
            op_costs.append(cost)
            flops[op.gpu] += cost.flops
            if op.kind in _COMM_FIELD:
                comm[op.gpu] += CommBytes(**{_COMM_FIELD[op.kind]: cost.comm_bytes})
        for g in range(world):
            memory_tl[g].append(_memory(schedule, live[g], g, sizes))
            flops_tl[g].append(flops[g])
            comm_tl[g].append(comm[g].total)

    per_gpu = tuple(
        GpuCosts(g, flops[g], comm[g], initial[g], tuple(memory_tl[g]), tuple(flops_tl[g]), tuple(comm_tl[g]))
        for g in range(world)
    )
    return Costs(schedule.name, schedule.config.model.params, sizes, len(schedule), per_gpu, tuple(op_costs))


# ---------------------------------------------------------------------------------------------------
# Formatting

_PREFIXES = ("", "K", "M", "G", "T", "P", "E")


def _human(value: int, unit: str) -> str:
    """``value`` with a decimal (SI, powers of 1000) prefix and one decimal: ``12.3 KB``."""
    scaled, prefix = float(value), 0
    while abs(scaled) >= 1000 and prefix < len(_PREFIXES) - 1:
        scaled, prefix = scaled / 1000, prefix + 1
    if prefix == 0:
        return f"{value} {unit}"
    return f"{scaled:.1f} {_PREFIXES[prefix]}{unit}"


def format_bytes(value: int) -> str:
    """Bytes in decimal units (1 KB = 1000 B).

    Examples
    --------
    >>> format_bytes(512), format_bytes(12_345), format_bytes(3_200_000)
    ('512 B', '12.3 KB', '3.2 MB')
    """
    return _human(value, "B")


def format_flops(value: int) -> str:
    """FLOPs in decimal units.

    Examples
    --------
    >>> format_flops(1_179_648)
    '1.2 MFLOP'
    """
    return _human(value, "FLOP")


def _timeline_json(g: GpuCosts) -> dict:
    return {
        "gpu": g.gpu,
        "initial_memory": g.initial_memory.to_json(),
        "memory": [m.to_json() for m in g.memory_timeline],
        "flops": list(g.flops_timeline),
        "comm_bytes": list(g.comm_timeline),
    }


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    cell = lambda i, text: text.rjust(widths[i]) if i in right else text.ljust(widths[i])  # noqa: E731
    lines = [" | ".join(cell(i, text) for i, text in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return lines


def _format_table(costs: Costs) -> str:
    header = ["GPU", "FLOPs", "sent (AR/AG/RS/P2P)", "peak memory", "step"]
    header += ["params", "grads", "optimizer", "activations"]
    rows = [header]
    for g in costs.per_gpu:
        c, p = g.comm, g.peak_memory
        rows.append(
            [
                str(g.gpu),
                f"{format_flops(g.flops)} ({g.flops:,})",
                f"{format_bytes(c.total)} ({'/'.join(f'{v:,}' for v in c.to_json().values())})",
                f"{format_bytes(p.total)} ({p.total:,})",
                str(g.peak_step),
                format_bytes(p.params),
                format_bytes(p.grads),
                format_bytes(p.optimizer),
                format_bytes(p.activations),
            ]
        )
    lines = _table(rows, right=set(range(len(header))) - {2})
    total_comm = costs.total_comm.total
    lines.append(
        f"total over {len(costs.per_gpu)} GPUs: {format_flops(costs.total_flops)} ({costs.total_flops:,} FLOPs), "
        f"{format_bytes(total_comm)} sent ({total_comm:,} B); model {costs.params:,} params, "
        f"{costs.steps} steps ({costs.schedule_name or 'schedule'})"
    )
    return "\n".join(lines)

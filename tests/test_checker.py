"""Tests of the schedule checker and the liveness simulation it shares with other readers."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Callable

import pytest

from parallelviz import ModelConfig, Op, OpKind, ParallelConfig, RunConfig, Schedule, Step, TensorRef, build_schedule
from parallelviz.checker import Liveness, ScheduleError, check, live_tensors, step_events
from tests.schedule_text import build, config_of, make, op

# Helpers -------------------------------------------------------------------------------------

def with_step(schedule: Schedule, index: int, ops: list[Op]) -> Schedule:
    steps = list(schedule.steps)
    steps[index] = Step(tuple(ops), steps[index].phase)
    return replace(schedule, steps=tuple(steps))


def drop(schedule: Schedule, index: int, predicate: Callable[[Op], bool]) -> Schedule:
    return with_step(schedule, index, [o for o in schedule.steps[index].ops if not predicate(o)])


def raises(schedule: Schedule) -> ScheduleError:
    with pytest.raises(ScheduleError) as info:
        check(schedule)
    return info.value


# A tiny valid one-GPU schedule: load, free.
ONE = config_of()
LOAD_FREE = make(ONE, [[op(0, "L x[0]")], [op(0, "X x[0]")]])

MUTATION_CONFIGS = [(1, 1, 2, "end"), (2, 1, 2, "overlap"), (1, 2, 2, "end"), (2, 2, 2, "end"), (2, 2, 2, "overlap")]


# Valid schedules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dp, tp, layers, grad_sync",
    list(itertools.product([1, 2, 3], [1, 2, 4], [1, 3], ["end", "overlap"])),
)
def test_builder_schedules_pass(dp: int, tp: int, layers: int, grad_sync: str) -> None:
    config = RunConfig(ModelConfig(d_hidden=8, batch=12, layers=layers), ParallelConfig(dp, tp, grad_sync))
    check(build_schedule(config))


def test_live_tensors_of_one_gpu_one_layer() -> None:
    expected = [
        {"x[0]"},
        {"x[0]", "h[0]"},
        {"x[0]", "h[0]", "x[1]"},
        {"x[0]", "h[0]", "x[1]", "dx[1]"},
        {"x[0]", "h[0]", "x[1]", "dx[1]", "dh[0]"},
        {"x[0]", "h[0]", "dx[1]", "dh[0]", "dW2[0]"},
        {"x[0]", "h[0]", "dh[0]", "dW2[0]", "dx[0]"},
        {"x[0]", "dW2[0]", "dx[0]", "dW1[0]"},
        {"dW2[0]", "dW1[0]"},
    ]
    states = live_tensors(build())
    assert [{str(t) for t in state[0]} - {"W1[0]", "W2[0]"} for state in states] == expected
    assert all({"W1[0]", "W2[0]"} <= {str(t) for t in state[0]} for state in states)


def test_live_tensors_track_partial_sums() -> None:
    states = live_tensors(build(tp=2))  # steps: L, F h, F x~, AR x, LOSS, B dh, W dW2, B dx~, W dW1 + AR dx, X
    x1, dx0 = TensorRef("x", 1), TensorRef("x", 0, grad=True)
    assert [state[1].get(x1) for state in states[1:4]] == [None, True, False]
    assert [state[0].get(dx0) for state in states[6:9]] == [None, True, False]
    assert not any(any(live.values()) for live in states[-1])


def test_live_tensors_are_snapshots() -> None:
    states = live_tensors(LOAD_FREE)
    states[0][0].clear()
    assert TensorRef("x", 0) in live_tensors(LOAD_FREE)[0][0]
    assert len(states) == 2 and TensorRef("x", 0) not in states[1][0]


def test_liveness_records_where_tensors_were_written() -> None:
    liveness = Liveness(build(layers=1))
    for _ in liveness:
        pass
    assert liveness.written[0, TensorRef("W1", 0, grad=True)] == 7


# The error and its grid ----------------------------------------------------------------------


def test_error_text_is_reason_then_grid_marked_at_the_step() -> None:
    schedule = make(ONE, [[op(0, "L x[0]")], [op(0, "F h[0]", "x[0] W1[0]")], [op(0, "X x[0]"), op(0, "X x[0]")]])
    error = raises(schedule)
    lines = str(error).splitlines()
    assert error.step == 2 and error.schedule is schedule
    assert lines[0] == error.reason == "GPU 0: X x[0] frees x[0], which is not live on GPU 0"
    assert lines[1:] == schedule.format_grid(mark_step=2, message=error.reason).splitlines()
    marked = [line for line in lines if "<-- ERROR HERE" in line]
    assert len(marked) == 1 and marked[0].split()[0] == "2" and "X x[0]; X x[0]" in marked[0]


def test_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


# Single-GPU rules ----------------------------------------------------------------------------


def test_read_of_tensor_never_written() -> None:
    error = raises(make(ONE, [[op(0, "F h[0]", "x[0] W1[0]")]]))
    assert error.step == 0 and "reads x[0], which is not live" in error.reason


def test_read_of_freed_tensor() -> None:
    schedule = make(ONE, [[op(0, "L x[0]")], [op(0, "X x[0]")], [op(0, "F h[0]", "x[0] W1[0]")]])
    assert raises(schedule).step == 2


def test_write_of_live_tensor() -> None:
    error = raises(make(ONE, [[op(0, "L x[0]")], [op(0, "L x[0]")], [op(0, "X x[0]")]]))
    assert error.step == 1 and "writes x[0], which is already live" in error.reason


def test_free_of_weight_then_read() -> None:
    schedule = make(ONE, [[op(0, "L x[0]"), op(0, "X W1[0]"), op(0, "F h[0]", "x[0] W1[0]")]])
    assert "reads W1[0], which is not live" in raises(schedule).reason


def test_ops_of_a_gpu_run_in_list_order() -> None:
    ok = make(ONE, [[op(0, "L x[0]"), op(0, "F h[0]", "x[0] W1[0]"), op(0, "X h[0]"), op(0, "X x[0]")]])
    check(ok)
    wrong = make(ONE, [[op(0, "F h[0]", "x[0] W1[0]"), op(0, "L x[0]"), op(0, "X h[0]"), op(0, "X x[0]")]])
    assert "reads x[0], which is not live" in raises(wrong).reason


def test_op_on_gpu_outside_the_world() -> None:
    assert "runs on GPU 1, but the schedule has 1 GPUs" in raises(make(ONE, [[op(1, "L x[0]")]])).reason


# Partial sums --------------------------------------------------------------------------------


def test_partial_read_before_all_reduce_is_rejected() -> None:
    schedule = build(tp=2, layers=2)
    assert str(schedule.steps[3]) == "AR x[1]{0,1}; AR x[1]{0,1}"
    error = raises(drop(schedule, 3, lambda o: True))
    assert error.step == 4 and error.reason == "GPU 0: F h[1] reads x[1], a partial sum not yet reduced"


def test_all_reduce_in_list_order_within_a_step() -> None:
    """``AR x[1]; F h[1]`` in one step is fine; ``F h[1]; AR x[1]`` reads a partial sum."""
    schedule = build(tp=2, layers=2)
    ar, fh = schedule.steps[3].ops, schedule.steps[4].ops

    def merged(first: tuple[Op, ...], second: tuple[Op, ...]) -> Schedule:
        ops = [o for gpu in range(2) for o in first + second if o.gpu == gpu]
        merged_steps = schedule.steps[:3] + (Step(tuple(ops)),) + schedule.steps[5:]
        return replace(schedule, steps=merged_steps)

    check(merged(ar, fh))
    assert "F h[1] reads x[1], a partial sum" in raises(merged(fh, ar)).reason


def test_collective_may_read_only_its_own_partial_tensor() -> None:
    config = config_of(tp=2)
    partials = [op(g, t) for g in range(2) for t in ("L x[0]~", "LOSS dx[1]~")]
    own = make(config, [partials, [op(g, "AR dx[1]{0,1}") for g in range(2)]])
    assert live_tensors(own)[1][0][TensorRef("x", 1, grad=True)] is False
    other = make(config, [partials, [op(g, "AR dx[1]{0,1}", "dx[1] x[0]") for g in range(2)]])
    error = raises(other)
    assert error.step == 1 and error.reason == "GPU 0: AR dx[1]{0,1} reads x[0], a partial sum not yet reduced"


def test_partial_sum_left_at_the_end() -> None:
    schedule = build(tp=2)
    index = next(i for i, step in enumerate(schedule) if str(step.ops[0]) == "W dW1[0]")
    partial = [replace(o, partial=True) if o.kind == OpKind.BACKWARD_WEIGHT else o for o in schedule.steps[index].ops]
    error = raises(with_step(schedule, index, partial))
    assert error.step == index and "dW1[0] on GPU 0 is still a partial sum at end of schedule" in error.reason


# Collectives ---------------------------------------------------------------------------------


def test_collective_needs_its_gpu_in_the_group() -> None:
    config = config_of(dp=2)
    steps = [[op(g, "L x[0]") for g in range(2)], [op(0, "AR x[0]{1}"), op(1, "AR x[0]{1}")]]
    error = raises(make(config, steps))
    assert error.step == 1 and "GPU 0 is not in its group (1,)" in error.reason


def test_collective_group_must_be_distinct_ranks_in_the_world() -> None:
    config = config_of(dp=2)
    for group in ("{0,0}", "{0,2}"):
        steps = [[op(g, "L x[0]") for g in range(2)], [op(0, f"AR x[0]{group}")]]
        assert "invalid group" in raises(make(config, steps)).reason


def test_reduction_must_be_sum_or_mean() -> None:
    config = config_of(dp=2)
    steps = [[op(g, "L x[0]") for g in range(2)], [op(g, "AR x[0]{0,1}", reduce="max") for g in range(2)]]
    assert "must reduce by 'sum' or 'mean' (got 'max')" in raises(make(config, steps)).reason


def test_collective_members_must_agree_on_reduction() -> None:
    config = config_of(dp=2)
    steps = [[op(g, "L x[0]") for g in range(2)], [op(0, "AR x[0]{0,1}"), op(1, "AR x[0]{0,1}", reduce="mean")]]
    assert "GPU 1 has no matching AR x[0]{0,1} in this step" in raises(make(config, steps)).reason


def test_collective_of_tensor_not_live() -> None:
    config = config_of(dp=2)
    steps = [[op(0, "L x[0]")], [op(g, "AR x[0]{0,1}") for g in range(2)]]
    error = raises(make(config, steps))
    assert error.step == 1 and "GPU 1: AR x[0]{0,1} reads x[0], which is not live on GPU 1" in error.reason


def test_collectives_in_different_orders_deadlock() -> None:
    config = config_of(dp=2)
    load = [op(g, t) for g in range(2) for t in ("L x[0]", "LOSS dx[1]")]
    a, b = "AR x[0]{0,1}", "AR dx[1]{0,1}"
    steps = [load, [op(0, a), op(0, b), op(1, b), op(1, a)]]
    error = raises(make(config, steps))
    assert error.step == 1 and "GPU 1 runs AR dx[1]{0,1} before its part of AR x[0]{0,1}" in error.reason
    assert "deadlock" in error.reason


def test_step_events_run_collective_once_all_members_arrive() -> None:
    config = config_of(dp=2)
    step = [op(0, "AR x[0]{0,1}"), op(0, "X x[0]"), op(1, "L x[0]"), op(1, "AR x[0]{0,1}")]
    schedule = make(config, [[op(0, "L x[0]")], step])
    events = [[str(o) + f"@{o.gpu}" for o in event] for event in step_events(schedule, 1)]
    assert events == [["L x[0]@1"], ["AR x[0]{0,1}@0", "AR x[0]{0,1}@1"], ["X x[0]@0"]]


def test_send_recv_move_a_tensor_with_its_partial_flag() -> None:
    config = config_of(dp=2)
    steps = [
        [op(0, "L x[0]"), op(0, "LOSS dx[1]~")],
        [op(0, "SEND dx[1]{0,1}"), op(1, "RECV dx[1]{0,1}")],
        [op(0, "X dx[1]"), op(0, "X x[0]")],
    ]
    states = live_tensors(make(config, steps))
    assert states[1][1] == {TensorRef("W1", 0): False, TensorRef("W2", 0): False, TensorRef("x", 1, True): True}
    error = raises(make(config, steps))  # GPU 1's copy is dangling, and partial
    assert "dx[1] on GPU 1 (written at step 1) is never freed" in error.reason


@pytest.mark.parametrize(
    "steps, reason",
    [
        ([[op(0, "SEND x[0]{0,1}"), op(1, "RECV x[0]{0,1}")]], "GPU 0: SEND x[0]{0,1} reads x[0], which is not live"),
        (
            [[op(g, "L x[0]") for g in range(2)], [op(0, "SEND x[0]{0,1}"), op(1, "RECV x[0]{0,1}")]],
            "GPU 1: RECV x[0]{0,1} writes x[0], which is already live",
        ),
        ([[op(0, "L x[0]")], [op(0, "SEND x[0]{0,1}")]], "GPU 1 has no matching RECV x[0]{0,1}"),
        ([[op(1, "RECV x[0]{0,1}")]], "GPU 0 has no matching SEND x[0]{0,1}"),
        ([[op(0, "L x[0]")], [op(0, "SEND x[0]{1,0}")]], "needs group (sender, receiver)"),
    ],
)
def test_send_recv_errors(steps: list[list[Op]], reason: str) -> None:
    assert reason in raises(make(config_of(dp=2), steps)).reason


def test_all_gather_and_reduce_scatter_need_live_tensor_and_all_members() -> None:
    config = config_of(tp=2)
    loaded = [op(g, "L x[0]") for g in range(2)]
    check(make(config, [loaded, [op(g, "AG x[0]{0,1}") for g in range(2)], [op(g, "X x[0]") for g in range(2)]]))
    assert "GPU 1 has no matching RS x[0]{0,1}" in raises(make(config, [loaded, [op(0, "RS x[0]{0,1}")]])).reason
    no_load = [[op(0, "L x[0]")], [op(g, "AG x[0]{0,1}") for g in range(2)]]
    assert "GPU 1: AG x[0]{0,1} reads x[0], which is not live" in raises(make(config, no_load)).reason


def test_reduce_scatter_completes_a_partial_sum() -> None:
    config = config_of(tp=2)
    steps = [[op(g, "L x[0]~") for g in range(2)], [op(g, "RS x[0]{0,1}") for g in range(2)]]
    assert live_tensors(make(config, steps))[1][0][TensorRef("x", 0)] is False


# Mutations of builder schedules --------------------------------------------------------------


def _ops_with_index(schedule: Schedule) -> list[tuple[int, Op]]:
    return list(schedule.ops())


@pytest.mark.parametrize("dp, tp, layers, grad_sync", MUTATION_CONFIGS)
def test_dropping_any_free_leaves_a_dangling_tensor(dp: int, tp: int, layers: int, grad_sync: str) -> None:
    schedule = build(dp, tp, layers, grad_sync)
    frees = [(i, o) for i, o in _ops_with_index(schedule) if o.kind == OpKind.FREE]
    assert len(frees) == schedule.world_size * (4 * layers + 2)  # x, h, dx, dh of each layer; x[L], dx[L]
    for index, free in frees:
        error = raises(drop(schedule, index, lambda o, free=free: o == free))
        assert error.reason.startswith(f"dangling at end of schedule: {free.tensor} on GPU {free.gpu} ")
        assert "never freed" in error.reason
        writers = [o for o in schedule.steps[error.step].on_gpu(free.gpu) if o.kind != OpKind.FREE]
        assert free.tensor in [o.tensor for o in writers]  # the marked step is where it was written


@pytest.mark.parametrize("dp, tp, layers, grad_sync", MUTATION_CONFIGS)
def test_collective_missing_a_member_names_it(dp: int, tp: int, layers: int, grad_sync: str) -> None:
    schedule = build(dp, tp, layers, grad_sync)
    collectives = [(i, o) for i, o in _ops_with_index(schedule) if o.is_collective]
    assert collectives or (dp, tp) == (1, 1)
    for index, missing in collectives:
        error = raises(drop(schedule, index, lambda o, missing=missing: o == missing))
        assert error.step == index
        assert error.reason.startswith(f"GPU {missing.gpu} has no matching {missing} in this step (GPU ")
        assert f"<-- ERROR HERE: GPU {missing.gpu} has no matching" in str(error)


def _first_step_holding(schedule: Schedule, gpu: int, tensor: TensorRef) -> int:
    return next(i for i, state in enumerate(live_tensors(schedule)) if tensor in state[gpu])


@pytest.mark.parametrize("dp, tp, layers, grad_sync", MUTATION_CONFIGS)
def test_backward_op_moved_before_its_input_exists(dp: int, tp: int, layers: int, grad_sync: str) -> None:
    schedule = build(dp, tp, layers, grad_sync)
    moved = 0
    for index, step in enumerate(schedule.steps):
        for target_op in step.on_gpu(0):
            if target_op.kind not in (OpKind.BACKWARD_INPUT, OpKind.BACKWARD_WEIGHT):
                continue
            inputs = [t for t in target_op.reads if not t.is_weight]
            ready = max(_first_step_holding(schedule, 0, t) for t in inputs)
            for target in sorted({ready - 1, 0}):  # just before the last input exists, and the very start
                same = [o for o in step.ops if (o.kind, o.tensor) == (target_op.kind, target_op.tensor)]
                mutated = drop(schedule, index, lambda o, same=same: o in same)
                mutated = with_step(mutated, target, list(mutated.steps[target].ops) + same)
                error = raises(mutated)
                assert error.step == target, (str(target_op), target, error.reason)
                assert f"{target_op} reads" in error.reason and "which is not live" in error.reason
                moved += 1
    assert moved >= 4 * layers

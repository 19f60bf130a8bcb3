"""Tests of the numpy executor: the reference, every op and collective, and whole schedules vs the reference."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pytest

from parallelviz import ModelConfig, Op, OpKind, ParallelConfig, RunConfig, Schedule, Step, TensorRef, build_schedule
from parallelviz.checker import ScheduleError, check
from parallelviz.executor import TOLERANCE, ExecutionError, execute, make_inputs, reference, verify
from tests.schedule_text import build, config_of, make, op

# Helpers -------------------------------------------------------------------------------------

def on_all(gpus: int, text: str, **kwargs: str) -> list[Op]:
    return [op(g, text, **kwargs) for g in range(gpus)]


def mutate(schedule: Schedule, change: Callable[[int, Op], Op | None]) -> Schedule:
    """Apply ``change(step index, op)`` to every op; ``None`` drops the op."""
    steps = []
    for index, step in enumerate(schedule.steps):
        ops = [new for o in step.ops if (new := change(index, o)) is not None]
        steps.append(Step(tuple(ops), step.phase))
    return replace(schedule, steps=tuple(steps))


def caught(schedule: Schedule) -> bool:
    """True when the checker rejects the schedule or its result differs from the reference."""
    try:
        return not verify(schedule).ok
    except ScheduleError:
        return True


# The reference -------------------------------------------------------------------------------


def _loss_of(config: RunConfig, inputs: object, w1: list[np.ndarray], w2: list[np.ndarray]) -> float:
    x = inputs.x  # type: ignore[attr-defined]
    for a, b in zip(w1, w2):
        x = x + np.maximum(x @ a, 0) @ b
    return 0.5 * float(np.sum((x - inputs.y) ** 2)) / config.model.batch  # type: ignore[attr-defined]


def test_reference_gradients_match_finite_differences() -> None:
    config = config_of(layers=3, d_model=3, d_hidden=4, batch=5)
    inputs = make_inputs(config, seed=7)
    loss, grads = reference(config, seed=7)
    w1, w2 = [w.copy() for w in inputs.w1], [w.copy() for w in inputs.w2]
    assert loss == pytest.approx(_loss_of(config, inputs, w1, w2), abs=1e-14)
    eps = 1e-6
    for name, weights in (("W1", w1), ("W2", w2)):
        for layer, w in enumerate(weights):
            numeric = np.zeros_like(w)
            for index in np.ndindex(w.shape):
                saved = w[index]
                w[index] = saved + eps
                up = _loss_of(config, inputs, w1, w2)
                w[index] = saved - eps
                down = _loss_of(config, inputs, w1, w2)
                w[index] = saved
                numeric[index] = (up - down) / (2 * eps)
            np.testing.assert_allclose(grads[TensorRef(name, layer, grad=True)], numeric, atol=1e-7)


def test_inputs_are_seeded_and_of_order_one() -> None:
    config = config_of(layers=6)
    a, b, c = make_inputs(config, 0), make_inputs(config, 0), make_inputs(config, 1)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.w2[5], b.w2[5]) and not np.array_equal(a.x, c.x)
    assert a.x.shape == (64, 8) and a.w1[0].shape == (8, 16) and a.w2[0].shape == (16, 8)
    assert 0.1 < reference(config_of(layers=100), seed=0)[0] / reference(config_of(layers=1), seed=0)[0] < 10


# Whole schedules against the reference --------------------------------------------------------


def _random_configs(count: int, seed: int = 2024) -> list[RunConfig]:
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(count):
        dp, tp, layers = (int(v) for v in rng.integers(1, 5, size=3))
        model = ModelConfig(
            d_model=int(rng.integers(1, 6)),
            d_hidden=tp * int(rng.integers(1, 4)),
            batch=dp * int(rng.integers(1, 4)),
            layers=layers,
        )
        configs.append(RunConfig(model, ParallelConfig(dp, tp, str(rng.choice(["end", "overlap"])))))
    return configs


def _config_id(config: RunConfig) -> str:
    m, p = config.model, config.parallel
    return f"dp{p.dp}-tp{p.tp}-L{m.layers}-d{m.d_model}-h{m.d_hidden}-b{m.batch}-{p.grad_sync}"


@pytest.mark.parametrize("seed, config", [pytest.param(i, c, id=_config_id(c)) for i, c in enumerate(_random_configs(60))])
def test_random_configs_match_reference(seed: int, config: RunConfig) -> None:
    result = verify(build_schedule(config), seed=seed)
    assert result.ok, result
    assert result.max_abs_error <= 1e-10 and result.tolerance == TOLERANCE
    assert len(result.errors) == 2 * config.model.layers


def test_verification_fields() -> None:
    result = verify(build(dp=2, tp=2, layers=3), seed=5)
    loss, _ = reference(config_of(2, 2, 3), seed=5)
    assert result.ok and result.loss == pytest.approx(loss, abs=1e-12) and result.reference_loss == loss
    assert sorted(result.errors) == sorted(f"d{w}[{l}]" for w in ("W1", "W2") for l in range(3))
    assert result.max_abs_error == max(result.loss_error, result.grad_error, result.replica_error)


def test_loss_is_mean_over_data_parallel_replicas() -> None:
    result = execute(build(dp=4, tp=2), seed=3)
    assert sorted(result.losses) == list(range(8))
    replicas = [result.losses[2 * d] for d in range(4)]
    assert [result.losses[2 * d + 1] for d in range(4)] == replicas  # tensor-parallel ranks agree
    assert len(set(replicas)) == 4 and result.loss == pytest.approx(np.mean(replicas), abs=1e-14)


def test_each_gpu_holds_only_its_shards() -> None:
    config = config_of(dp=2, tp=2, layers=1)
    result = execute(build_schedule(config))
    for gpu in range(4):
        shapes = {str(t): a.shape for t, a in result.tensors[gpu].items()}
        assert shapes == {"W1[0]": (8, 8), "W2[0]": (8, 8), "dW1[0]": (8, 8), "dW2[0]": (8, 8)}


def test_execute_does_not_check() -> None:
    schedule = make(config_of(), [on_all(1, "L x[0]")])
    assert TensorRef("x", 0) in execute(schedule).tensors[0]
    with pytest.raises(ScheduleError):
        verify(schedule)


# Mutations: verify must catch them -----------------------------------------------------------


def _logical_collectives(schedule: Schedule) -> list[tuple[int, TensorRef, OpKind]]:
    return sorted({(i, o.tensor, o.kind) for i, o in schedule.ops() if o.is_collective}, key=str)


@pytest.mark.parametrize("dp, tp, grad_sync", [(2, 1, "end"), (2, 1, "overlap"), (1, 2, "end"), (2, 2, "overlap")])
def test_removing_any_collective_is_caught(dp: int, tp: int, grad_sync: str) -> None:
    schedule = build(dp, tp, layers=3, grad_sync=grad_sync)
    collectives = _logical_collectives(schedule)
    # dx[0] is never used (x[0] is the input), so its all-reduce is dead work: see the report.
    removable = [c for c in collectives if c[1] != TensorRef("x", 0, grad=True)]
    kinds = {("fwd-tp" if not t.grad else "bwd-tp" if t.name == "x" else "dp-grad") for _, t, _ in removable}
    assert kinds == ({"fwd-tp", "bwd-tp"} if tp > 1 else set()) | ({"dp-grad"} if dp > 1 else set())
    for index, tensor, _ in removable:
        mutated = mutate(schedule, lambda i, o: None if (i, o.tensor, o.is_collective) == (index, tensor, True) else o)
        assert caught(mutated), f"removing the all-reduce of {tensor} at step {index} went unnoticed"


def test_missing_gradient_all_reduce_passes_check_but_fails_verify() -> None:
    schedule = build(dp=2, layers=2)
    dw = TensorRef("W2", 1, grad=True)
    mutated = mutate(schedule, lambda i, o: None if (o.is_collective and o.tensor == dw) else o)
    check(mutated)
    result = verify(mutated)
    assert not result.ok and result.replica_error > 1e-3 and result.errors[str(dw)] > 1e-3
    assert all(error <= TOLERANCE for name, error in result.errors.items() if name != str(dw))


def test_sum_instead_of_mean_for_gradients_is_caught() -> None:
    mutated = mutate(build(dp=2), lambda i, o: replace(o, reduce="sum") if o.reduce == "mean" else o)
    result = verify(mutated)
    assert not result.ok and result.replica_error == 0 and result.grad_error > 1e-3


def test_residual_added_on_every_tensor_parallel_rank_is_caught() -> None:
    """Without the partial flag every rank adds the residual, so the all-reduce counts it tp times."""
    schedule = build(tp=2, layers=2)
    mutated = mutate(schedule, lambda i, o: replace(o, partial=False) if o.is_compute and o.partial else o)
    check(mutated)
    assert not verify(mutated).ok


def test_missing_weight_gradient_is_an_infinite_error() -> None:
    schedule = build(layers=2)
    mutated = mutate(schedule, lambda i, o: None if str(o) == "W dW1[0]" else o)
    check(mutated)
    result = verify(mutated)
    assert not result.ok and result.errors["dW1[0]"] == float("inf") and result.errors["dW2[0]"] <= TOLERANCE


# List order within a step --------------------------------------------------------------------


def test_collective_listed_before_compute_runs_first() -> None:
    """``AR x[1]{0,1}; F h[1]`` in one step: h[1] must be computed from the reduced x[1]."""
    schedule = build(tp=2, layers=2)
    assert str(schedule.steps[3]).startswith("AR x[1]") and str(schedule.steps[4]).startswith("F h[1]")
    ops = [o for gpu in range(2) for o in schedule.steps[3].on_gpu(gpu) + schedule.steps[4].on_gpu(gpu)]
    merged = replace(schedule, steps=schedule.steps[:3] + (Step(tuple(ops)),) + schedule.steps[5:])
    assert verify(merged).ok


def test_frees_listed_before_a_collective_run_in_order() -> None:
    schedule = build(dp=2, tp=2, layers=2)
    step = next(s for s in schedule if str(s.on_gpu(0)[0]) == "W dW1[1]")
    assert [str(o) for o in step.on_gpu(0)] == ["W dW1[1]", "X h[1]", "X dh[1]", "AR dx[1]{0,1}"]
    assert verify(schedule).ok


# Ops the executor refuses --------------------------------------------------------------------


def test_operand_missing_from_reads_is_refused() -> None:
    """The checker trusts ``reads``; the executor makes sure they are honest."""
    schedule = build(layers=1)
    mutated = mutate(schedule, lambda i, o: replace(o, reads=o.reads[:2]) if str(o) == "F x[1]" else o)
    check(mutated)
    with pytest.raises(ExecutionError, match=r"step 2: GPU 0: F x\[1\]: needs x\[0\], which is not among its reads"):
        execute(mutated)


def test_op_without_a_rule_is_refused() -> None:
    with pytest.raises(ExecutionError, match="no rule"):
        execute(make(config_of(), [[op(0, "L h[0]")]]))
    with pytest.raises(ExecutionError, match=r"the loss is taken at x\[1\]"):
        execute(make(config_of(), [[op(0, "L x[0]"), op(0, "LOSS dx[0]", "x[0]")]]))


# Collectives on hand-made schedules ---------------------------------------------------------


def test_all_reduce_sum_and_mean() -> None:
    config = config_of(dp=2, batch=4)
    x = make_inputs(config, 0).x
    for reduce, expected in (("sum", x[:2] + x[2:]), ("mean", (x[:2] + x[2:]) / 2)):
        result = execute(make(config, [on_all(2, "L x[0]"), on_all(2, "AR x[0]{0,1}", reduce=reduce)]))
        for gpu in range(2):
            np.testing.assert_array_equal(result.tensors[gpu][TensorRef("x", 0)], expected)


def test_all_gather_along_hidden_and_batch_axes() -> None:
    config = config_of(tp=2, batch=4)
    inputs = make_inputs(config, 0)
    h = np.maximum(inputs.x @ inputs.w1[0], 0)
    steps = [on_all(2, "L x[0]"), on_all(2, "F h[0]", reads="x[0] W1[0]"), on_all(2, "AG h[0]{0,1}")]
    result = execute(make(config, steps))
    for gpu in range(2):
        np.testing.assert_allclose(result.tensors[gpu][TensorRef("h", 0)], h, atol=1e-15)
    config = config_of(dp=2, batch=4)
    result = execute(make(config, [on_all(2, "L x[0]"), on_all(2, "AG x[0]{0,1}")]))
    np.testing.assert_array_equal(result.tensors[1][TensorRef("x", 0)], make_inputs(config, 0).x)


@pytest.mark.parametrize("reduce, factor", [("sum", 2.0), ("mean", 1.0)])
def test_reduce_scatter_keeps_each_members_shard(reduce: str, factor: float) -> None:
    config = config_of(tp=2, batch=4)
    inputs = make_inputs(config, 0)
    h = np.maximum(inputs.x @ inputs.w1[0], 0)
    steps = [
        on_all(2, "L x[0]"),
        on_all(2, "F h[0]", reads="x[0] W1[0]"),
        on_all(2, "AG h[0]{0,1}"),
        on_all(2, "RS h[0]{0,1}", reduce=reduce),
    ]
    result = execute(make(config, steps))
    for gpu in range(2):
        np.testing.assert_allclose(result.tensors[gpu][TensorRef("h", 0)], factor * h[:, 8 * gpu : 8 * gpu + 8])


def test_all_gather_of_unsharded_tensor_is_refused() -> None:
    config = config_of(tp=2)  # x is replicated across the tensor-parallel group
    with pytest.raises(ExecutionError, match=r"x\[0\] is not split along one axis across group \(0, 1\)"):
        execute(make(config, [on_all(2, "L x[0]"), on_all(2, "AG x[0]{0,1}")]))


def test_send_recv_copies_the_tensor() -> None:
    config = config_of(dp=2, batch=4)
    steps = [[op(0, "L x[0]")], [op(0, "SEND x[0]{0,1}"), op(1, "RECV x[0]{0,1}")], on_all(2, "X x[0]")]
    check(make(config, steps))
    result = execute(make(config, steps[:2]))
    np.testing.assert_array_equal(result.tensors[1][TensorRef("x", 0)], make_inputs(config, 0).x[:2])
    sent, received = result.tensors[0][TensorRef("x", 0)], result.tensors[1][TensorRef("x", 0)]
    assert sent is not received and np.array_equal(sent, received)

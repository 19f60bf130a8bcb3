"""Tests of the cost model against closed forms written out independently here."""

from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest

from parallelviz.checker import ScheduleError
from parallelviz.config import ConfigError, ModelConfig, ParallelConfig, RunConfig
from parallelviz.costs import ByteSizes, MemoryBreakdown, compute_costs, format_bytes, format_flops
from parallelviz.schedule import OpKind
from parallelviz.schedules import build_schedule
from tests.schedule_text import make, op

SEED = ModelConfig(d_model=8, d_hidden=16, batch=64, layers=6)


def costs_for(model: ModelConfig = SEED, sizes: ByteSizes = ByteSizes(), **parallel):
    return compute_costs(build_schedule(RunConfig(model, ParallelConfig(**parallel))), sizes)


def random_configs(count: int, seed: int = 0):
    """Random valid (model, dp, tp, grad_sync): batch a multiple of dp, d_hidden a multiple of tp."""
    rng = random.Random(seed)
    for _ in range(count):
        dp, tp = rng.randint(1, 4), rng.randint(1, 4)
        model = ModelConfig(
            d_model=rng.randint(1, 12),
            d_hidden=tp * rng.randint(1, 6),
            batch=dp * rng.randint(1, 9),
            layers=rng.randint(1, 5),
        )
        yield model, dp, tp, rng.choice(["end", "overlap"])


# --- FLOPs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, dp, tp, grad_sync", list(random_configs(60)))
def test_training_flops_are_6_params_tokens(model, dp, tp, grad_sync):
    # Bias-free MLP: forward 2*P*T, backward 4*P*T (input + weight gradients), T = batch tokens.
    params = 2 * model.d_model * model.d_hidden * model.layers
    costs = costs_for(model, dp=dp, tp=tp, grad_sync=grad_sync)
    assert costs.params == params
    assert costs.total_flops == 6 * params * model.batch
    # Every GPU does the same share: 6 matmuls of 2*b*dm*k per block, b = batch/dp, k = d_hidden/tp.
    b, k = model.batch // dp, model.d_hidden // tp
    assert [g.flops for g in costs.per_gpu] == [6 * 2 * b * model.d_model * k * model.layers] * (dp * tp)


def test_each_matmul_costs_2_b_dm_k_and_elementwise_ops_cost_nothing():
    costs = costs_for(dp=2, tp=2)
    b, dm, k = 32, 8, 8
    by_kind: dict[str, set[int]] = {}
    for oc in costs.op_costs:
        key = f"{oc.op.kind.value} {oc.op.tensor.name}{'g' if oc.op.tensor.grad else ''}"
        by_kind.setdefault(key, set()).add(oc.flops)
    matmuls = {"F h", "F x", "B hg", "B xg", "W W1g", "W W2g"}
    for key in matmuls:
        assert by_kind[key] == {2 * b * dm * k}, key
    for key in set(by_kind) - matmuls:
        assert by_kind[key] == {0}, key


# --- Communication ---------------------------------------------------------------------------------


@pytest.mark.parametrize("grad_sync", ["end", "overlap"])
@pytest.mark.parametrize("dp", [2, 4, 8])
def test_dp_gradient_all_reduce_is_2_n_minus_1_over_n_of_local_gradients(dp, grad_sync):
    model = ModelConfig(d_model=8, d_hidden=16, batch=64, layers=3)
    costs = costs_for(model, dp=dp, tp=1, grad_sync=grad_sync)
    local_grad_bytes = 2 * 8 * 16 * 3 * 2  # W1 and W2 per block, 2 bytes per gradient element
    expected = Fraction(2 * (dp - 1), dp) * local_grad_bytes
    assert expected.denominator == 1
    for g in costs.per_gpu:
        assert g.comm.all_reduce == expected
        assert g.comm.total == expected
    # One all-reduce per weight gradient, each over the replicas that share the GPU's TP position.
    for gpu in range(dp):
        ops = [oc.op for oc in costs.op_costs if oc.op.gpu == gpu and oc.op.kind == OpKind.ALL_REDUCE]
        assert sorted(str(op.tensor) for op in ops) == sorted(f"dW{i}[{l}]" for l in range(3) for i in (1, 2))
        assert all(op.group == tuple(range(dp)) for op in ops)


def test_dp_all_reduce_uses_gradient_bytes():
    sizes = ByteSizes(param=2, grad=4, optimizer=12, activation=2)
    costs = costs_for(ModelConfig(d_model=8, d_hidden=16, batch=64, layers=2), sizes, dp=2)
    assert costs.per_gpu[0].comm.all_reduce == 2 * 1 * (2 * 8 * 16 * 2 * 4) // 2


def test_all_reduce_rounds_down_per_op():
    # dp=3: each gradient is 5*7 elements * 2 B = 70 B; 2*2/3*70 = 93.33 -> 93 per op; 2 ops per block.
    costs = costs_for(ModelConfig(d_model=5, d_hidden=7, batch=3, layers=2), dp=3)
    assert all(g.comm.all_reduce == 4 * 93 for g in costs.per_gpu)


@pytest.mark.parametrize("tp", [2, 4])
def test_tp_all_reduces_one_forward_one_backward_per_block(tp):
    model = ModelConfig(d_model=8, d_hidden=16, batch=64, layers=5)
    costs = costs_for(model, dp=1, tp=tp)
    b, dm = 64, 8
    x_bytes = b * dm * 2  # the full d_model-wide activation each TP rank holds
    for gpu in range(tp):
        ops = [oc.op for oc in costs.op_costs if oc.op.gpu == gpu and oc.op.kind == OpKind.ALL_REDUCE]
        assert sorted(str(op.tensor) for op in ops) == sorted(
            [f"x[{l + 1}]" for l in range(5)] + [f"dx[{l}]" for l in range(5)]
        )
        assert all(op.group == tuple(range(tp)) for op in ops)
        assert costs.per_gpu[gpu].comm.all_reduce == 5 * 2 * Fraction(2 * (tp - 1), tp) * x_bytes


@pytest.mark.parametrize("dp, tp", [(2, 2), (4, 2), (2, 4)])
def test_dp_and_tp_all_reduces_add_up(dp, tp):
    costs = costs_for(dp=dp, tp=tp)
    b, dm, k, layers = 64 // dp, 8, 16 // tp, 6
    tp_part = layers * 2 * Fraction(2 * (tp - 1), tp) * (b * dm * 2)
    dp_part = Fraction(2 * (dp - 1), dp) * (2 * dm * k * layers * 2)
    assert all(g.comm.all_reduce == tp_part + dp_part for g in costs.per_gpu)


def test_no_communication_on_one_gpu():
    costs = costs_for(dp=1, tp=1)
    assert costs.total_comm.total == 0
    assert costs.to_json()["totals"]["comm_bytes"] == 0
    assert costs.comm_timeline[0] == (0,) * costs.steps


def test_all_gather_reduce_scatter_send_recv():
    config = RunConfig(ModelConfig(d_model=8, d_hidden=16, batch=64, layers=1), ParallelConfig(dp=1, tp=4))
    group = (0, 1, 2, 3)
    schedule = make(
        config,
        [
            # dW1 is loaded so that the reduce-scatter moves a live tensor (compute_costs walks as the checker does).
            [op(g, "L dW1[0]") for g in group] + [op(g, "AG W1[0]{0,1,2,3}") for g in group],
            [op(g, "RS dW1[0]{0,1,2,3}") for g in group],
            [op(0, "L x[1]"), op(0, "SEND x[1]{0,1}"), op(1, "RECV x[1]{0,1}")],
        ],
    )
    costs = compute_costs(schedule)
    # All-gather of W1: the whole W1 across the group is 8*16 params * 2 B = 256 B; each sends 3/4 of it.
    assert [g.comm.all_gather for g in costs.per_gpu] == [192] * 4
    # Reduce-scatter of dW1: each holds its 8*4 gradient piece (64 B) when the op starts; sends 3/4.
    assert [g.comm.reduce_scatter for g in costs.per_gpu] == [48] * 4
    # Send of x[1] (64*8 elements * 2 B): the sender counts it, the receiver sends nothing.
    assert [g.comm.send_recv for g in costs.per_gpu] == [1024, 0, 0, 0]
    # The received tensor is resident on the receiver, and stays on the sender.
    assert costs.memory_timeline[1][2].activations == 1024
    assert costs.memory_timeline[0][2].activations == 1024
    assert costs.memory_timeline[2][2].activations == 0


# --- Memory ----------------------------------------------------------------------------------------


def test_seed_peak_memory_by_hand():
    # Seed: d_model=8, d_hidden=16, batch=64, layers=6, dp=2, tp=1. Per GPU: b = 32 rows, k = 16.
    # Sizes (2 B per activation element): x = 32*8*2 = 512 B, h = 32*16*2 = 1024 B, dx = 512, dh = 1024.
    # Steps: 0 "L x[0]", 1..12 forward (F h[l], F x[l+1]), 13 "LOSS dx[6]", 14 "B dh[5]", ...
    # After step 14: x[0..6] (7 * 512 = 3584) + h[0..5] (6 * 1024 = 6144) + dx[6] (512) + dh[5] (1024)
    #   = 11264 B of activations, and no gradient yet.
    # Afterwards, per block the step "B dh[l]" is the local maximum: frees of x[l+2], dx[l+2], h[l+1],
    # dh[l+1] (-3072 B) outweigh the new dh[l], dx[l+1] and two 8*16*2 = 256 B gradients (+2048 B),
    # so each later local maximum is 1024 B lower: step 14 is the peak.
    # Params: 1536 * 2 = 3072 B; optimizer: 1536 * 12 = 18432 B (all of the model on each DP replica).
    costs = costs_for(SEED, dp=2, tp=1)
    for gpu in (0, 1):
        assert costs.peak_step[gpu] == 14
        assert costs.peak_memory[gpu] == MemoryBreakdown(params=3072, grads=0, optimizer=18432, activations=11264)
        assert costs.peak_memory_bytes[gpu] == 3072 + 18432 + 11264
    assert max(m.activations for m in costs.memory_timeline[0]) == 11264


def test_seed_memory_timeline_through_forward_and_end():
    costs = costs_for(SEED, dp=2, tp=1)
    timeline = costs.memory_timeline[0]
    x, h = 512, 1024
    assert timeline[0].activations == x
    for l in range(6):  # step 2l+1: F h[l]; step 2l+2: F x[l+1]
        assert timeline[2 * l + 1].activations == (l + 1) * x + (l + 1) * h
        assert timeline[2 * l + 2].activations == (l + 2) * x + (l + 1) * h
    # After the whole schedule: no activation left, every weight gradient resident (12 * 256 B).
    assert timeline[-1] == MemoryBreakdown(params=3072, grads=12 * 256, optimizer=18432, activations=0)
    assert costs.initial_memory[0] == MemoryBreakdown(params=3072, optimizer=18432)


@pytest.mark.parametrize("model, dp, tp, grad_sync", list(random_configs(20, seed=1)))
def test_static_memory_and_final_state(model, dp, tp, grad_sync):
    costs = costs_for(model, dp=dp, tp=tp, grad_sync=grad_sync)
    local_params = 2 * model.d_model * (model.d_hidden // tp) * model.layers
    for g in costs.per_gpu:
        assert all(m.params == 2 * local_params and m.optimizer == 12 * local_params for m in g.memory_timeline)
        assert g.memory_timeline[-1].grads == 2 * local_params
        assert g.memory_timeline[-1].activations == 0
        assert g.peak_memory_bytes == max(m.total for m in g.memory_timeline)


def test_schedule_that_cannot_run_is_rejected_like_the_checker_does():
    config = RunConfig(ModelConfig(layers=1), ParallelConfig(dp=1))
    with pytest.raises(ScheduleError, match=r"^GPU 0: X x\[0\] frees x\[0\], which is not live on GPU 0\n"):
        compute_costs(make(config, [[op(0, "X x[0]")]]))


def test_peak_step_is_the_first_step_reaching_the_max():
    config = RunConfig(ModelConfig(layers=1), ParallelConfig(dp=2))
    load = [op(g, "L x[0]") for g in (0, 1)]
    reduce = [op(g, "AR x[0]{0,1}") for g in (0, 1)]
    costs = compute_costs(make(config, [load, reduce, reduce]))
    assert costs.peak_step == (0, 0)
    assert len({m.total for m in costs.memory_timeline[0]}) == 1


def test_byte_sizes_scale_memory():
    sizes = ByteSizes(param=4, grad=4, optimizer=8, activation=4)
    costs = costs_for(SEED, sizes, dp=2)
    assert costs.peak_memory[0] == MemoryBreakdown(params=1536 * 4, grads=0, optimizer=1536 * 8, activations=2 * 11264)


# --- Totals, timelines, output ---------------------------------------------------------------------


@pytest.mark.parametrize("model, dp, tp, grad_sync", list(random_configs(15, seed=2)))
def test_per_gpu_costs_sum_to_totals_and_timelines_end_at_totals(model, dp, tp, grad_sync):
    costs = costs_for(model, dp=dp, tp=tp, grad_sync=grad_sync)
    data = costs.to_json()
    assert data["totals"]["flops"] == sum(g["flops"] for g in data["per_gpu"]) == costs.total_flops
    assert data["totals"]["comm_bytes"] == sum(sum(g["comm_bytes"].values()) for g in data["per_gpu"])
    assert data["totals"]["comm_bytes"] == sum(oc.comm_bytes for oc in costs.op_costs)
    for g in costs.per_gpu:
        assert len(g.flops_timeline) == len(g.comm_timeline) == len(g.memory_timeline) == costs.steps
        assert list(g.flops_timeline) == sorted(g.flops_timeline) and g.flops_timeline[-1] == g.flops
        assert list(g.comm_timeline) == sorted(g.comm_timeline) and g.comm_timeline[-1] == g.comm.total


def test_json_shape():
    data = json.loads(json.dumps(costs_for(dp=2, tp=2).to_json()))
    assert {"params", "per_gpu", "totals"} <= set(data)
    assert data["params"] == 1536
    assert {"flops", "comm_bytes"} <= set(data["totals"])
    assert len(data["per_gpu"]) == 4
    for i, g in enumerate(data["per_gpu"]):
        assert g["gpu"] == i
        assert {"gpu", "flops", "comm_bytes", "peak_memory_bytes", "peak_memory", "peak_step"} <= set(g)
        assert set(g["comm_bytes"]) == {"all_reduce", "all_gather", "reduce_scatter", "send_recv"}
        assert set(g["peak_memory"]) == {"params", "grads", "optimizer", "activations"}
        assert g["peak_memory_bytes"] == sum(g["peak_memory"].values())
        assert all(isinstance(v, int) for v in [g["flops"], g["peak_step"], *g["comm_bytes"].values()])
    timeline = costs_for(dp=2, tp=2).to_json(timeline=True)["timeline"]
    assert len(timeline) == 4 and len(timeline[0]["memory"]) == len(timeline[0]["flops"])


def test_format_table():
    costs = costs_for(dp=2, tp=2)
    lines = costs.format_table().splitlines()
    assert len(lines) == 2 + 4 + 1  # header, rule, one row per GPU, totals
    assert lines[2].split("|")[0].strip() == "0"
    assert "147,456" in lines[2] and "147.5 KFLOP" in lines[2]
    assert lines[-1].startswith("total") and "589,824" in lines[-1]


def test_human_units():
    assert format_bytes(999) == "999 B"
    assert format_bytes(1000) == "1.0 KB"
    assert format_bytes(12_345) == "12.3 KB"
    assert format_flops(1_200_000_000) == "1.2 GFLOP"


# --- Validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["param", "grad", "optimizer", "activation"])
@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_invalid_byte_sizes_name_the_field(field, bad):
    with pytest.raises(ConfigError, match=rf"^{field} must be a positive integer") as info:
        ByteSizes(**{field: bad})
    assert info.value.field == field

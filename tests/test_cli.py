"""Tests of the command-line interface: output, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import parallelviz.cli
from parallelviz import ModelConfig, OpKind, ParallelConfig, RunConfig, Step, TensorRef, build_schedule
from parallelviz.cli import cli, main
from parallelviz.costs import ByteSizes, compute_costs

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


# schedule ------------------------------------------------------------------------------------


def test_schedule_prints_the_grid_with_default_config() -> None:
    result = run("schedule")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == build_schedule(RunConfig()).format_grid() + "\n"
    assert RunConfig() == RunConfig(ModelConfig(8, 16, 64, 6), ParallelConfig(2, 1, "end"))


def test_schedule_options_reach_the_config() -> None:
    args = ["--dp", "3", "--tp", "2", "--layers", "2", "--d-model", "4", "--d-hidden", "6", "--batch", "9"]
    result = run("schedule", *args, "--grad-sync", "overlap")
    config = RunConfig(ModelConfig(4, 6, 9, 2), ParallelConfig(3, 2, "overlap"))
    assert result.exit_code == 0
    assert result.stdout == build_schedule(config).format_grid() + "\n"
    assert "GPU 5" in result.stdout and "AR dW2[1]{1,3,5}" in result.stdout


def test_schedule_json_round_trips_every_op() -> None:
    result = run("schedule", "--json", "--tp", "2", "--layers", "2")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    config = RunConfig(ModelConfig(layers=2), ParallelConfig(dp=2, tp=2))
    schedule = build_schedule(config)
    assert data["name"] == "dp_tp"
    assert data["config"] == dict(d_model=8, d_hidden=16, batch=64, layers=2, dp=2, tp=2, grad_sync="end")
    assert len(data["steps"]) == len(schedule)
    for step, expected in zip(data["steps"], schedule):
        assert set(step) == {"phase", "ops"} and step["phase"] == expected.phase
        for op, want in zip(step["ops"], expected.ops, strict=True):
            assert set(op) == {"gpu", "kind", "tensor", "reads", "group", "reduce", "partial"}
            assert op["gpu"] == want.gpu and OpKind(op["kind"]) == want.kind
            assert TensorRef.from_str(op["tensor"]) == want.tensor
            assert tuple(TensorRef.from_str(r) for r in op["reads"]) == want.reads
            assert tuple(op["group"]) == want.group and op["reduce"] == want.reduce and op["partial"] == want.partial


def test_schedule_json_marks_partial_sums() -> None:
    steps = json.loads(run("schedule", "--json", "--dp", "1", "--tp", "2").stdout)["steps"]
    partial = {op["tensor"] for step in steps for op in step["ops"] if op["partial"]}
    assert partial == {f"x[{l}]" for l in range(1, 7)} | {f"dx[{l}]" for l in range(6)}


# verify --------------------------------------------------------------------------------------


def test_verify_text() -> None:
    result = run("verify", "--tp", "2", "--layers", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("OK: max abs error ") and lines[-1].endswith("(tolerance 1e-10)")
    assert any(line.startswith("gradient error") and "6 weight gradients" in line for line in lines)


def test_verify_json() -> None:
    result = run("verify", "--json", "--dp", "4", "--tp", "2", "--seed", "3")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True and isinstance(data["max_abs_error"], float) and data["max_abs_error"] <= 1e-10
    assert {"loss", "reference_loss", "loss_error", "grad_error", "replica_error", "errors", "seed"} <= set(data)
    assert data["seed"] == 3 and len(data["errors"]) == 12


def test_verify_seed_changes_the_data() -> None:
    losses = {json.loads(run("verify", "--json", "--seed", seed).stdout)["loss"] for seed in ("0", "0", "1")}
    assert len(losses) == 2


def _without_gradient_sync(config: RunConfig):  # noqa: ANN202
    schedule = build_schedule(config)
    steps = tuple(Step(tuple(o for o in s.ops if o.tensor != TensorRef("W1", 0, True)), s.phase) for s in schedule)
    return replace(schedule, steps=steps)


def test_verify_exits_1_on_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallelviz.cli, "build_schedule", _without_gradient_sync)
    result = run("verify", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["max_abs_error"] is None  # infinite: dW1[0] was never computed
    assert data["errors"]["dW1[0]"] is None and data["errors"]["dW2[0]"] <= 1e-10
    assert run("verify").stdout.splitlines()[-1].startswith("MISMATCH: max abs error inf")


def test_verify_exits_1_on_invalid_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_final_free(config: RunConfig):  # noqa: ANN202
        schedule = build_schedule(config)
        last = Step(tuple(o for o in schedule.steps[-2].ops if o.kind != OpKind.FREE), "backward")
        return replace(schedule, steps=schedule.steps[:-2] + (last, schedule.steps[-1]))

    monkeypatch.setattr(parallelviz.cli, "build_schedule", no_final_free)
    result = run("verify")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: invalid schedule: dangling at end of schedule: x[0] on GPU 0")
    assert "<-- ERROR HERE" in result.stderr


# costs ---------------------------------------------------------------------------------------


def test_costs_prints_the_table() -> None:
    result = run("costs")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == compute_costs(build_schedule(RunConfig())).format_table() + "\n"
    args = ["--dp", "2", "--tp", "2", "--layers", "3", "--param-bytes", "4", "--activation-bytes", "1"]
    result = run("costs", *args)
    config = RunConfig(ModelConfig(layers=3), ParallelConfig(dp=2, tp=2))
    assert result.exit_code == 0
    costs = compute_costs(build_schedule(config), ByteSizes(param=4, activation=1))
    assert result.stdout == costs.format_table() + "\n"


def test_costs_json_keys_types_and_closed_forms() -> None:
    result = run("costs", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    data = json.loads(result.stdout)
    assert {"params", "per_gpu", "totals"} <= set(data)
    assert isinstance(data["params"], int) and data["params"] == 1536  # 2 * d_model * d_hidden * layers
    assert data["byte_sizes"] == {"param": 2, "grad": 2, "optimizer": 12, "activation": 2}
    assert {"flops", "comm_bytes"} <= set(data["totals"])
    assert all(isinstance(data["totals"][key], int) for key in ("flops", "comm_bytes"))
    assert data["totals"]["flops"] == 6 * 1536 * 64  # 6 * params * tokens
    assert [g["gpu"] for g in data["per_gpu"]] == [0, 1]
    for g in data["per_gpu"]:
        assert {"gpu", "flops", "comm_bytes", "peak_memory_bytes", "peak_memory"} <= set(g)
        assert set(g["comm_bytes"]) == {"all_reduce", "all_gather", "reduce_scatter", "send_recv"}
        assert set(g["peak_memory"]) == {"params", "grads", "optimizer", "activations"}
        numbers = [g["gpu"], g["flops"], g["peak_memory_bytes"], *g["comm_bytes"].values(), *g["peak_memory"].values()]
        assert all(type(value) is int for value in numbers)
        # dp=2, tp=1: each GPU all-reduces its whole gradient (1536 elements * 2 B), ring: 2(n-1)/n of it.
        assert g["comm_bytes"]["all_reduce"] == 2 * (2 - 1) * 1536 * 2 // 2 == 3072
        assert g["comm_bytes"]["all_gather"] == g["comm_bytes"]["reduce_scatter"] == g["comm_bytes"]["send_recv"] == 0
        assert g["flops"] == 6 * 1536 * 64 // 2
        assert g["peak_memory_bytes"] == sum(g["peak_memory"].values())
    assert data["totals"]["comm_bytes"] == 2 * 3072


def test_costs_json_is_costs_to_json_with_the_byte_sizes() -> None:
    args = ["--tp", "2", "--param-bytes", "4", "--grad-bytes", "4", "--optimizer-bytes", "8", "--activation-bytes", "4"]
    result = run("costs", "--json", *args)
    assert result.exit_code == 0
    sizes = ByteSizes(param=4, grad=4, optimizer=8, activation=4)
    expected = compute_costs(build_schedule(RunConfig(parallel=ParallelConfig(dp=2, tp=2))), sizes).to_json()
    assert json.loads(result.stdout) == expected
    assert expected["byte_sizes"] == {"param": 4, "grad": 4, "optimizer": 8, "activation": 4}


def test_costs_exits_1_on_invalid_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    def free_twice(config: RunConfig):  # noqa: ANN202
        schedule = build_schedule(config)
        return replace(schedule, steps=schedule.steps + (schedule.steps[-2],))

    monkeypatch.setattr(parallelviz.cli, "build_schedule", free_twice)
    result = run("costs", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    first_line = "Error: invalid schedule: GPU 0: X x[0] frees x[0], which is not live on GPU 0"
    assert result.stderr.splitlines()[0] == first_line and "<-- ERROR HERE" in result.stderr


@pytest.mark.parametrize("option", ["--param-bytes", "--grad-bytes", "--optimizer-bytes", "--activation-bytes"])
@pytest.mark.parametrize(
    "value, problem",
    [
        ("0", "0 is not in the range x>=1."),
        ("-4", "-4 is not in the range x>=1."),
        ("1.5", "'1.5' is not a valid integer."),
    ],
)
def test_invalid_byte_sizes_print_one_line_naming_the_option(option: str, value: str, problem: str) -> None:
    result = run("costs", option, value)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"Error: Invalid value for '{option}': {problem}\n"


def test_costs_help_shows_byte_size_defaults() -> None:
    result = run("costs", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    defaults = {"--param-bytes": 2, "--grad-bytes": 2, "--optimizer-bytes": 12, "--activation-bytes": 2}
    for option, default in defaults.items():
        entry = text.split(f" {option} INTEGER ", 1)[1].split(" --", 1)[0]
        assert entry.endswith(f"[default: {default}; x>=1]"), entry
    assert "--dp INTEGER" in text and "--json" in text


# Errors: one line, exit 2 --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["schedule", "verify", "costs"])
@pytest.mark.parametrize(
    "args, message",
    [
        (["--dp", "3"], "Error: batch must be divisible by dp=3 (got 64)"),
        (["--tp", "3"], "Error: d_hidden must be divisible by tp=3 (got 16)"),
        (["--dp", "0"], "Error: dp must be a positive integer (got 0)"),
        (["--layers", "-2"], "Error: layers must be a positive integer (got -2)"),
        (["--dp", "abc"], "Error: Invalid value for '--dp': 'abc' is not a valid integer."),
        (["--grad-sync", "never"], "Error: Invalid value for '--grad-sync': 'never' is not one of 'end', 'overlap'."),
        (["--batch"], "Error: Option '--batch' requires an argument."),
        (["--bogus"], "Error: No such option '--bogus'."),
    ],
)
def test_invalid_options_print_one_line(command: str, args: list[str], message: str) -> None:
    result = run(command, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == message + "\n"


def test_negative_seed_prints_one_line() -> None:
    result = run("verify", "--seed", "-1")
    assert (result.exit_code, result.stderr) == (2, "Error: Invalid value for '--seed': -1 is not in the range x>=0.\n")


def test_unknown_command_prints_one_line() -> None:
    result = run("nope")
    assert (result.exit_code, result.stderr) == (2, "Error: No such command 'nope'.\n")


def test_near_miss_option_stays_on_one_line() -> None:
    result = run("schedule", "--dpp", "2")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "'--dpp'" in result.stderr


def test_no_command_prints_help() -> None:
    result = run()
    assert result.exit_code == 0 and all(name in result.stdout for name in ("schedule", "verify", "costs"))


def test_help_shows_defaults() -> None:
    result = run("schedule", "--help")
    assert result.exit_code == 0
    defaults = {"--dp": 2, "--tp": 1, "--layers": 6, "--d-model": 8, "--d-hidden": 16, "--batch": 64}
    for option, default in defaults.items():
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(option + " "))
        assert f"[default: {default}]" in line
    assert "[default: end]" in result.stdout


def test_main_returns_exit_code_through_system_exit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["schedule", "--dp", "3"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "Error: batch must be divisible by dp=3 (got 64)\n")
    with pytest.raises(SystemExit) as info:
        main(["verify", "--layers", "1"])
    assert info.value.code == 0


def test_command_line_entry_point_without_traceback() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "parallelviz.cli", "verify", "--tp", "5"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        check=False,
    )
    assert (process.returncode, process.stdout, process.stderr) == (
        2,
        "",
        "Error: d_hidden must be divisible by tp=5 (got 16)\n",
    )


def test_import_does_not_load_manim() -> None:
    code = "import sys, parallelviz.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'manim'))"
    env = {"PYTHONPATH": str(ROOT), "PATH": ""}
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert process.stdout.strip() == "[]"

"""Golden schedules of the DP x TP builder, written by hand from build_dp_tp's documented order."""

from __future__ import annotations

import pytest

from parallelviz import ModelConfig, ParallelConfig, RunConfig, Schedule, build_schedule


def build(dp: int, tp: int, layers: int, grad_sync: str = "end") -> Schedule:
    return build_schedule(RunConfig(ModelConfig(layers=layers), ParallelConfig(dp=dp, tp=tp, grad_sync=grad_sync)))


def assert_matches_golden(actual: list[str], golden: list[str]) -> None:
    """Compare step strings one by one; fail at the first difference with its step number."""
    for index, (want, got) in enumerate(zip(golden, actual)):
        if want != got:
            pytest.fail(f"mismatch at step {index}: expected {want!r} got {got!r}", pytrace=False)
    if len(golden) != len(actual):
        extra = actual[len(golden) :] or golden[len(actual) :]
        pytest.fail(f"expected {len(golden)} steps, got {len(actual)} (first extra: {extra[0]!r})", pytrace=False)


def on_all(gpus: int, text: str) -> str:
    """The step string when every GPU runs the same ops ``text``."""
    return "; ".join([text] * gpus)


# dp=2, tp=1, layers=2, grad_sync="end": no TP communication; every weight gradient averaged
# over the DP group {0,1} in a final step.
DP2_END = [
    # forward: x^0 arrives, then h^l and x^{l+1} per block
    "L x[0]",
    "F h[0]",
    "F x[1]",
    "F h[1]",
    "F x[2]",
    # backward: loss gradient, then per block from the last: dh, dW2 (free x^{l+1}),
    # dx (free dx^{l+1}), dW1 (free h and dh)
    "LOSS dx[2]",
    "B dh[1]",
    "W dW2[1]; X x[2]",
    "B dx[1]; X dx[2]",
    "W dW1[1]; X h[1]; X dh[1]",
    "B dh[0]",
    "W dW2[0]; X x[1]",
    "B dx[0]; X dx[1]",
    "W dW1[0]; X h[0]; X dh[0]",
    "X x[0]; X dx[0]",
]
DP2_END_STEPS = [on_all(2, s) for s in DP2_END] + [
    on_all(2, "AR dW1[0]{0,1}; AR dW2[0]{0,1}; AR dW1[1]{0,1}; AR dW2[1]{0,1}")
]
DP2_END_PHASES = ["forward"] * 5 + ["backward"] * 10 + ["gradient sync"]

# dp=2, tp=1, layers=2, grad_sync="overlap": each weight gradient all-reduced in the step after
# the one that produced it.
DP2_OVERLAP_STEPS = [
    on_all(2, s)
    for s in DP2_END[:8]
    + [
        "B dx[1]; X dx[2]; AR dW2[1]{0,1}",
        "W dW1[1]; X h[1]; X dh[1]",
        "B dh[0]; AR dW1[1]{0,1}",
        "W dW2[0]; X x[1]",
        "B dx[0]; X dx[1]; AR dW2[0]{0,1}",
        "W dW1[0]; X h[0]; X dh[0]",
        "X x[0]; X dx[0]; AR dW1[0]{0,1}",
    ]
]

# dp=1, tp=2, layers=2: W2's output is a partial sum (~), all-reduced over {0,1} in its own
# step; W1's input gradient likewise, its all-reduce in the dW1 step.
TP2_STEPS = [
    on_all(2, s)
    for s in [
        "L x[0]",
        "F h[0]",
        "F x[1]~",
        "AR x[1]{0,1}",
        "F h[1]",
        "F x[2]~",
        "AR x[2]{0,1}",
        "LOSS dx[2]",
        "B dh[1]",
        "W dW2[1]; X x[2]",
        "B dx[1]~; X dx[2]",
        "W dW1[1]; X h[1]; X dh[1]; AR dx[1]{0,1}",
        "B dh[0]",
        "W dW2[0]; X x[1]",
        "B dx[0]~; X dx[1]",
        "W dW1[0]; X h[0]; X dh[0]; AR dx[0]{0,1}",
        "X x[0]; X dx[0]",
    ]
]
TP2_PHASES = ["forward"] * 7 + ["backward"] * 10

# dp=2, tp=2, layers=1, overlap, per GPU: TP groups {0,1} and {2,3}; DP groups {0,2} and {1,3}.
DP2_TP2_COMMON = ["L x[0]", "F h[0]", "F x[1]~", None, "LOSS dx[1]", "B dh[0]", "W dW2[0]; X x[1]"]


def dp2_tp2_gpu(tp_group: str, dp_group: str) -> list[str]:
    lines = [s if s is not None else f"AR x[1]{tp_group}" for s in DP2_TP2_COMMON]
    return lines + [
        f"B dx[0]~; X dx[1]; AR dW2[0]{dp_group}",
        f"W dW1[0]; X h[0]; X dh[0]; AR dx[0]{tp_group}",
        f"X x[0]; X dx[0]; AR dW1[0]{dp_group}",
    ]


DP2_TP2_GPUS = [
    dp2_tp2_gpu("{0,1}", "{0,2}"),
    dp2_tp2_gpu("{0,1}", "{1,3}"),
    dp2_tp2_gpu("{2,3}", "{0,2}"),
    dp2_tp2_gpu("{2,3}", "{1,3}"),
]


def test_dp2_end_golden() -> None:
    schedule = build(dp=2, tp=1, layers=2)
    assert_matches_golden([str(step) for step in schedule], DP2_END_STEPS)
    assert [step.phase for step in schedule] == DP2_END_PHASES


def test_dp2_overlap_golden() -> None:
    schedule = build(dp=2, tp=1, layers=2, grad_sync="overlap")
    assert_matches_golden([str(step) for step in schedule], DP2_OVERLAP_STEPS)
    assert {step.phase for step in schedule} == {"forward", "backward"}


def test_tp2_golden() -> None:
    schedule = build(dp=1, tp=2, layers=2)
    assert_matches_golden([str(step) for step in schedule], TP2_STEPS)
    assert [step.phase for step in schedule] == TP2_PHASES


@pytest.mark.parametrize("gpu", range(4))
def test_dp2_tp2_overlap_golden_per_gpu(gpu: int) -> None:
    schedule = build(dp=2, tp=2, layers=1, grad_sync="overlap")
    assert_matches_golden(schedule.gpu_lines(gpu), DP2_TP2_GPUS[gpu])


def test_grad_sync_does_not_matter_without_dp() -> None:
    assert build(1, 2, 2, "end").steps == build(1, 2, 2, "overlap").steps


def test_golden_helper_reports_first_mismatching_step() -> None:
    wrong = list(TP2_STEPS)
    wrong[3] = wrong[3].replace("AR", "AG")
    with pytest.raises(pytest.fail.Exception, match=r"mismatch at step 3: expected 'AG x\[1\]"):
        assert_matches_golden([str(step) for step in build(1, 2, 2)], wrong)
    with pytest.raises(pytest.fail.Exception, match="expected 16 steps, got 17"):
        assert_matches_golden([str(step) for step in build(1, 2, 2)], TP2_STEPS[:-1])

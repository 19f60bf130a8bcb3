"""Configuration validation: every error names the field and the rule."""

from __future__ import annotations

import pytest

from parallelviz.config import ConfigError, ModelConfig, ParallelConfig, RunConfig


@pytest.mark.parametrize("field", ["d_model", "d_hidden", "batch", "layers"])
@pytest.mark.parametrize("value", [0, -3, 2.5, "8", True])
def test_model_fields_must_be_positive_integers(field, value):
    with pytest.raises(ConfigError) as error:
        ModelConfig(**{field: value})
    assert str(error.value) == f"{field} must be a positive integer (got {value!r})"
    assert error.value.field == field


@pytest.mark.parametrize("field", ["dp", "tp"])
def test_parallel_degrees_must_be_positive_integers(field):
    with pytest.raises(ConfigError, match=f"^{field} must be a positive integer"):
        ParallelConfig(**{field: 0})


def test_grad_sync_names_its_choices():
    with pytest.raises(ConfigError, match=r"^grad_sync must be one of 'end', 'overlap'"):
        ParallelConfig(grad_sync="sometimes")


def test_batch_must_divide_by_dp():
    with pytest.raises(ConfigError, match=r"^batch must be divisible by dp=3 \(got 64\)$"):
        RunConfig(ModelConfig(batch=64), ParallelConfig(dp=3))


def test_hidden_must_divide_by_tp():
    with pytest.raises(ConfigError, match=r"^d_hidden must be divisible by tp=3 \(got 16\)$"):
        RunConfig(ModelConfig(d_hidden=16), ParallelConfig(tp=3))


def test_ranks_put_tensor_parallel_innermost():
    config = RunConfig(ModelConfig(d_hidden=24), ParallelConfig(dp=2, tp=3))
    assert [config.coords(r) for r in range(6)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert all(config.rank(*config.coords(r)) == r for r in range(6))
    assert (config.local_batch, config.local_hidden) == (32, 8)

"""Schedule builders, registered by name: each turns a RunConfig into a Schedule."""

from __future__ import annotations

from typing import Callable

from parallelviz.config import RunConfig
from parallelviz.schedule import Schedule
from parallelviz.schedules.dp_tp import build_dp_tp

__all__ = ["BUILDERS", "build_schedule"]

BUILDERS: dict[str, Callable[[RunConfig], Schedule]] = {
    "dp_tp": build_dp_tp,
}
"""Builders by name; later strategies (pipeline, ZeRO) register here."""


def build_schedule(config: RunConfig, name: str = "dp_tp") -> Schedule:
    """Build the schedule named ``name`` for ``config``.

    Examples
    --------
    >>> from parallelviz.config import ModelConfig, ParallelConfig
    >>> schedule = build_schedule(RunConfig(ModelConfig(layers=1), ParallelConfig(dp=1)))
    >>> [str(step) for step in schedule][:3]
    ['L x[0]', 'F h[0]', 'F x[1]']
    """
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise ValueError(f"schedule must be one of {sorted(BUILDERS)} (got {name!r})") from None
    return builder(config)

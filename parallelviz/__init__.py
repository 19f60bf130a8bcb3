"""parallelviz: schedules of parallel neural-network training, checked, executed, costed and animated."""

from __future__ import annotations

from parallelviz.config import ConfigError, ModelConfig, ParallelConfig, RunConfig
from parallelviz.schedule import Op, OpKind, Schedule, Step, TensorRef
from parallelviz.schedules import build_schedule

__all__ = [
    "ConfigError",
    "ModelConfig",
    "ParallelConfig",
    "RunConfig",
    "Op",
    "OpKind",
    "Schedule",
    "Step",
    "TensorRef",
    "build_schedule",
]

"""The seed's scenes: data, tensor, and data x tensor parallelism of a 6-block MLP."""

from __future__ import annotations

from parallelviz.config import ModelConfig, ParallelConfig
from parallelviz.render import ParallelismScene

SEED_MODEL = ModelConfig(d_model=8, d_hidden=16, batch=64, layers=6)


class DataParallel(ParallelismScene):
    """Two replicas, each with half of the batch (the original notebook)."""

    title = "Data parallelism"
    model = SEED_MODEL
    parallel = ParallelConfig(dp=2, tp=1)


class TensorParallel(ParallelismScene):
    """Two shards of every block's hidden axis (Megatron: W1 by columns, W2 by rows)."""

    title = "Tensor parallelism"
    model = SEED_MODEL
    parallel = ParallelConfig(dp=1, tp=2)


class DataTensorParallel(ParallelismScene):
    """Two data-parallel replicas of two tensor-parallel shards: four GPUs."""

    title = "Data x tensor parallelism"
    model = SEED_MODEL
    parallel = ParallelConfig(dp=2, tp=2)


class DataParallelOverlap(ParallelismScene):
    """Data parallelism with each weight gradient all-reduced as soon as it is ready (PyTorch DDP)."""

    title = "Data parallelism, overlapped all-reduce"
    model = SEED_MODEL
    parallel = ParallelConfig(dp=2, tp=1, grad_sync="overlap")

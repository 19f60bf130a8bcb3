"""Shapes of every tensor, whole and as held by one GPU; the one place that knows how tensors are sharded."""

from __future__ import annotations

from parallelviz.config import RunConfig
from parallelviz.schedule import TensorRef

__all__ = ["full_shape", "local_shape", "local_slices", "local_elements"]


def full_shape(config: RunConfig, tensor: TensorRef) -> tuple[int, int]:
    """Shape of the unsharded tensor (a gradient has its tensor's shape).

    Activations are stored batch-major: ``x`` is ``(batch, d_model)``, ``h`` is
    ``(batch, d_hidden)``; ``W1`` is ``(d_model, d_hidden)``, ``W2`` is
    ``(d_hidden, d_model)``.

    Examples
    --------
    >>> from parallelviz.config import ModelConfig, ParallelConfig
    >>> full_shape(RunConfig(ModelConfig(8, 16, 64, 6)), TensorRef("W2", 0))
    (16, 8)
    """
    m = config.model
    return {
        "x": (m.batch, m.d_model),
        "h": (m.batch, m.d_hidden),
        "W1": (m.d_model, m.d_hidden),
        "W2": (m.d_hidden, m.d_model),
    }[tensor.name]


def local_slices(config: RunConfig, tensor: TensorRef, gpu: int) -> tuple[slice, slice]:
    """Which rows and columns of the full tensor ``gpu`` holds.

    Data parallelism splits the batch rows of activations; tensor parallelism splits
    the hidden axis (``h`` and ``W1`` by columns, ``W2`` by rows). ``x`` is
    replicated across the tensor-parallel group; weights across the data-parallel one.
    """
    d, t = config.coords(gpu)
    b, k = config.local_batch, config.local_hidden
    batch_rows = slice(d * b, (d + 1) * b)
    hidden = slice(t * k, (t + 1) * k)
    everything = slice(None)
    return {
        "x": (batch_rows, everything),
        "h": (batch_rows, hidden),
        "W1": (everything, hidden),
        "W2": (hidden, everything),
    }[tensor.name]


def local_shape(config: RunConfig, tensor: TensorRef, gpu: int = 0) -> tuple[int, int]:
    """Shape of the piece of ``tensor`` that ``gpu`` holds.

    Examples
    --------
    >>> from parallelviz.config import ModelConfig, ParallelConfig
    >>> cfg = RunConfig(ModelConfig(8, 16, 64, 6), ParallelConfig(dp=2, tp=2))
    >>> local_shape(cfg, TensorRef("h", 3)), local_shape(cfg, TensorRef("W1", 3, grad=True))
    ((32, 8), (8, 8))
    """
    rows, cols = full_shape(config, tensor)
    row_slice, col_slice = local_slices(config, tensor, gpu)
    return len(range(rows)[row_slice]), len(range(cols)[col_slice])


def local_elements(config: RunConfig, tensor: TensorRef, gpu: int = 0) -> int:
    """Number of elements of ``tensor`` that ``gpu`` holds."""
    rows, cols = local_shape(config, tensor, gpu)
    return rows * cols

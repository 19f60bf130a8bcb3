"""Model and parallelism configuration: frozen dataclasses, validated in one place."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["ConfigError", "ModelConfig", "ParallelConfig", "RunConfig"]


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field and the rule."""

    def __init__(self, field: str, rule: str, value: object) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{field} must be {rule} (got {value!r})")


def _require_positive_ints(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if f.type in ("int", int) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f.name, "a positive integer", value)


@dataclass(frozen=True)
class ModelConfig:
    """A stack of bias-free residual MLP blocks.

    Block ``l`` computes ``h = relu(x @ W1)`` and ``x' = x + h @ W2``.

    Parameters
    ----------
    d_model
        Width of the residual stream (rows of ``W1``).
    d_hidden
        Width of the hidden layer (columns of ``W1``, rows of ``W2``).
    batch
        Global batch size (tokens per training step).
    layers
        Number of MLP blocks.

    Examples
    --------
    >>> ModelConfig(d_model=8, d_hidden=16, batch=64, layers=6).params
    1536
    >>> ModelConfig(d_model=0)
    Traceback (most recent call last):
    ...
    parallelviz.config.ConfigError: d_model must be a positive integer (got 0)
    """

    d_model: int = 8
    d_hidden: int = 16
    batch: int = 64
    layers: int = 6

    def __post_init__(self) -> None:
        _require_positive_ints(self)

    @property
    def params(self) -> int:
        """Number of parameters of the whole model (two weight matrices per block)."""
        return 2 * self.d_model * self.d_hidden * self.layers


@dataclass(frozen=True)
class ParallelConfig:
    """How the model is spread over GPUs.

    Parameters
    ----------
    dp
        Data-parallel degree: replicas, each with ``batch / dp`` of the batch.
    tp
        Tensor-parallel degree: shards of the hidden axis (Megatron: ``W1`` by
        columns, ``W2`` by rows).
    grad_sync
        When the data-parallel gradient all-reduce runs: ``"end"`` (after the whole
        backward pass) or ``"overlap"`` (each gradient as soon as it is ready, as
        PyTorch DDP does).
    """

    dp: int = 2
    tp: int = 1
    grad_sync: str = "end"

    def __post_init__(self) -> None:
        _require_positive_ints(self)
        if self.grad_sync not in ("end", "overlap"):
            raise ConfigError("grad_sync", "one of 'end', 'overlap'", self.grad_sync)

    @property
    def world_size(self) -> int:
        """Number of GPUs."""
        return self.dp * self.tp


@dataclass(frozen=True)
class RunConfig:
    """A model and its parallelism, checked against each other.

    Examples
    --------
    >>> RunConfig(ModelConfig(batch=64), ParallelConfig(dp=3))
    Traceback (most recent call last):
    ...
    parallelviz.config.ConfigError: batch must be divisible by dp=3 (got 64)
    """

    model: ModelConfig = ModelConfig()
    parallel: ParallelConfig = ParallelConfig()

    def __post_init__(self) -> None:
        m, p = self.model, self.parallel
        if m.batch % p.dp:
            raise ConfigError("batch", f"divisible by dp={p.dp}", m.batch)
        if m.d_hidden % p.tp:
            raise ConfigError("d_hidden", f"divisible by tp={p.tp}", m.d_hidden)

    @property
    def local_batch(self) -> int:
        """Batch rows held by one data-parallel replica."""
        return self.model.batch // self.parallel.dp

    @property
    def local_hidden(self) -> int:
        """Hidden columns held by one tensor-parallel shard."""
        return self.model.d_hidden // self.parallel.tp

    def rank(self, dp_index: int, tp_index: int) -> int:
        """Global GPU rank of a (data-parallel, tensor-parallel) coordinate; TP is innermost."""
        return dp_index * self.parallel.tp + tp_index

    def coords(self, rank: int) -> tuple[int, int]:
        """The (dp_index, tp_index) of a GPU rank."""
        return divmod(rank, self.parallel.tp)

"""Staircase geometry of every GPU's tensors and FLOP blocks, as numpy coordinates (no manim)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parallelviz.config import RunConfig
from parallelviz.schedule import TensorRef

__all__ = ["HIDDEN_AXIS", "BATCH_AXIS", "MODEL_AXIS", "Face", "Box", "GpuLayout", "Layout", "build_layout"]

HIDDEN_AXIS = 0
"""Hidden width, repeated layer after layer (the seed's ``L_by_hidden_ax``)."""
BATCH_AXIS = 1
"""Batch rows (the seed's ``B_ax``)."""
MODEL_AXIS = 2
"""Model width, descending one ``d_model`` per matmul (the seed's ``L_by_d_model_ax``)."""
LABEL_BATCH_FRACTION = 0.35
"""How far along the batch axis activation labels sit (0 = front, 1 = back, where the weights are)."""


@dataclass(frozen=True)
class Face:
    """An axis-aligned rectangle: a tensor drawn as a face.

    Parameters
    ----------
    normal
        The axis the face is perpendicular to.
    position
        Coordinate of the face along ``normal``.
    lo, hi
        Corners of the face (3-vectors; equal along ``normal``).
    """

    normal: int
    lo: np.ndarray
    hi: np.ndarray

    @property
    def position(self) -> float:
        """Coordinate along the normal axis."""
        return float(self.lo[self.normal])

    @property
    def center(self) -> np.ndarray:
        """Centre of the rectangle."""
        return (self.lo + self.hi) / 2

    @property
    def label_point(self) -> np.ndarray:
        """Where the face's label goes: its centre, moved towards the front of the batch.

        Activations span the batch axis and weights stand at its back; labelling an
        activation in the front part of its face keeps it clear of the weight labels
        behind it (of this GPU and of a neighbouring tensor-parallel shard).
        """
        point = self.center.copy()
        if self.normal != BATCH_AXIS:
            point[BATCH_AXIS] = self.lo[BATCH_AXIS] + LABEL_BATCH_FRACTION * self.size[BATCH_AXIS]
        return point

    @property
    def size(self) -> np.ndarray:
        """Extent along each axis (0 along the normal)."""
        return self.hi - self.lo

    @property
    def corners(self) -> np.ndarray:
        """The four corners, in order around the rectangle, shape ``(4, 3)``."""
        a, b = [axis for axis in range(3) if axis != self.normal]
        corners = np.repeat(self.lo[None, :], 4, axis=0).astype(float)
        corners[[1, 2], a] = self.hi[a]
        corners[[2, 3], b] = self.hi[b]
        return corners

    def same_rectangle(self, other: Face, atol: float = 1e-9) -> bool:
        """True when both faces cover the same rectangle."""
        return (
            self.normal == other.normal
            and np.allclose(self.lo, other.lo, atol=atol)
            and np.allclose(self.hi, other.hi, atol=atol)
        )


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: one matmul's FLOPs on one GPU.

    Parameters
    ----------
    lo, hi
        Opposite corners.
    """

    lo: np.ndarray
    hi: np.ndarray

    @property
    def size(self) -> np.ndarray:
        """Edge lengths along the three axes."""
        return self.hi - self.lo

    @property
    def volume(self) -> float:
        """Product of the edge lengths."""
        return float(np.prod(self.size))

    @property
    def center(self) -> np.ndarray:
        """Centre of the box."""
        return (self.lo + self.hi) / 2

    def face(self, axis: int, upper: bool) -> Face:
        """The box's face perpendicular to ``axis``, on its upper or lower side."""
        lo, hi = self.lo.copy(), self.hi.copy()
        if upper:
            lo[axis] = hi[axis]
        else:
            hi[axis] = lo[axis]
        return Face(axis, lo, hi)

    def faces(self) -> list[Face]:
        """All six faces."""
        return [self.face(axis, upper) for axis in range(3) for upper in (False, True)]

    def overlaps(self, other: Box, atol: float = 1e-9) -> bool:
        """True when the interiors intersect (touching faces do not count)."""
        return bool(np.all(np.minimum(self.hi, other.hi) - np.maximum(self.lo, other.lo) > atol))


@dataclass
class GpuLayout:
    """Where one GPU's tensors and FLOP blocks sit.

    Parameters
    ----------
    gpu
        Global rank.
    faces
        Face of each tensor slot, keyed by ``(name, layer)`` (a gradient uses its
        tensor's face).
    boxes
        FLOP block of each matmul, keyed by the weight's ``(name, layer)``.
    """

    gpu: int
    faces: dict[tuple[str, int], Face] = field(default_factory=dict)
    boxes: dict[tuple[str, int], Box] = field(default_factory=dict)

    def face(self, tensor: TensorRef) -> Face:
        """The face a tensor (or its gradient) is drawn on."""
        return self.faces[(tensor.name, tensor.layer)]

    def box(self, weight: TensorRef) -> Box:
        """The FLOP block of the matmul with ``weight``."""
        return self.boxes[(weight.name, weight.layer)]

    def partial_face(self, tensor: TensorRef) -> Face:
        """Where a partial sum produced by a matmul lands before its all-reduce.

        ``x[l+1]`` comes out of the far end of ``W2[l]``'s block; ``dx[l]`` out of the
        near end of ``W1[l]``'s block (which is ``x[l]``'s own face). With ``tp == 1``
        these are the tensor's own faces.
        """
        if tensor.name == "x" and not tensor.grad:
            return self.box(TensorRef("W2", tensor.layer - 1)).face(HIDDEN_AXIS, upper=True)
        if tensor.name == "x" and tensor.grad:
            return self.box(TensorRef("W1", tensor.layer)).face(HIDDEN_AXIS, upper=False)
        return self.face(tensor)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners of everything this GPU draws."""
        points = np.array([p for f in self.faces.values() for p in (f.lo, f.hi)])
        return points.min(axis=0), points.max(axis=0)


@dataclass
class Layout:
    """Geometry of every GPU of a run.

    Parameters
    ----------
    config
        The run.
    gpus
        One layout per GPU rank.
    tp_gap, dp_gap
        Gaps between tensor-parallel shards (hidden units) and data-parallel replicas
        (batch units).
    """

    config: RunConfig
    gpus: list[GpuLayout]
    tp_gap: float
    dp_gap: float

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners of everything drawn."""
        los, his = zip(*(g.bounds() for g in self.gpus))
        return np.min(los, axis=0), np.max(his, axis=0)

    def corners(self) -> np.ndarray:
        """The eight corners of the bounding box, shape ``(8, 3)``."""
        lo, hi = self.bounds()
        return np.array([[(lo, hi)[(i >> a) & 1][a] for a in range(3)] for i in range(8)])

    def axis_arrows(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Start and end of the three axis arrows, beside the first block of GPU 0.

        Keys are ``"d_model"``, ``"d_hidden"`` and ``"batch"``; each arrow spans one
        local tensor dimension and sits just outside the staircase, as in the seed.
        """
        m = self.config.model
        gpu = self.gpus[0]
        x0 = gpu.faces[("x", 0)]
        h0 = gpu.faces[("h", 0)]
        margin = 0.5 * m.d_model
        start = np.array([x0.lo[HIDDEN_AXIS] - margin, x0.lo[BATCH_AXIS] - margin, x0.hi[MODEL_AXIS]])
        arrows = {}
        end = start.copy()
        end[MODEL_AXIS] = x0.lo[MODEL_AXIS]
        arrows["d_model"] = (start.copy(), end)
        end = start.copy()
        end[HIDDEN_AXIS] = start[HIDDEN_AXIS] + h0.size[HIDDEN_AXIS]
        arrows["d_hidden"] = (start.copy(), end)
        end = start.copy()
        end[BATCH_AXIS] = start[BATCH_AXIS] + x0.size[BATCH_AXIS]
        arrows["batch"] = (start.copy(), end)
        return arrows


def _rect(normal: int, position: float, spans: dict[int, tuple[float, float]]) -> Face:
    lo, hi = np.zeros(3), np.zeros(3)
    lo[normal] = hi[normal] = position
    for axis, (a, b) in spans.items():
        lo[axis], hi[axis] = a, b
    return Face(normal, lo, hi)


def build_layout(config: RunConfig, tp_gap: float | None = None, dp_gap: float | None = None) -> Layout:
    """Lay out every GPU's staircase, following the seed notebook.

    Along the hidden axis, block ``l`` of tensor-parallel shard ``t`` spans
    ``[t*(k+tp_gap) + l*step, ... + k]`` with ``k`` the local hidden width and
    ``step = d_hidden + (tp-1)*tp_gap``; data-parallel replica ``d`` spans batch
    ``[d*(b+dp_gap), ... + b]``; block ``l`` descends from ``-l*d_model`` on the model
    axis (``W1`` above ``h``, ``W2`` below). Weights sit at the back of the batch,
    ``x^l`` at the start of block ``l``, ``h^l`` between the two matmuls.

    Parameters
    ----------
    config
        The run to lay out.
    tp_gap, dp_gap
        Gaps between shards and replicas; default ``d_hidden/8`` and ``batch/4``.

    Examples
    --------
    >>> from parallelviz.config import ModelConfig, ParallelConfig
    >>> layout = build_layout(RunConfig(ModelConfig(8, 16, 64, 6), ParallelConfig(dp=2)))
    >>> layout.gpus[0].box(TensorRef("W1", 0)).volume  # d_model x d_hidden x batch/dp
    4096.0
    """
    m, p = config.model, config.parallel
    tp_gap = m.d_hidden / 8 if tp_gap is None else tp_gap
    dp_gap = m.batch / 4 if dp_gap is None else dp_gap
    k, b, dm = config.local_hidden, config.local_batch, m.d_model
    layer_step = m.d_hidden + (p.tp - 1) * tp_gap
    gpus = []
    for rank in range(p.world_size):
        d, t = config.coords(rank)
        gpu = GpuLayout(rank)
        b0, b1 = d * (b + dp_gap), d * (b + dp_gap) + b
        for l in range(m.layers + 1):
            s = t * (k + tp_gap) + l * layer_step
            e = s + k
            top, mid, bottom = (1 - l) * dm, -l * dm, -(l + 1) * dm
            gpu.faces[("x", l)] = _rect(HIDDEN_AXIS, s, {BATCH_AXIS: (b0, b1), MODEL_AXIS: (mid, top)})
            if l == m.layers:
                break
            gpu.faces[("W1", l)] = _rect(BATCH_AXIS, b1, {HIDDEN_AXIS: (s, e), MODEL_AXIS: (mid, top)})
            gpu.faces[("W2", l)] = _rect(BATCH_AXIS, b1, {HIDDEN_AXIS: (s, e), MODEL_AXIS: (bottom, mid)})
            gpu.faces[("h", l)] = _rect(MODEL_AXIS, mid, {HIDDEN_AXIS: (s, e), BATCH_AXIS: (b0, b1)})
            gpu.boxes[("W1", l)] = Box(np.array([s, b0, mid]), np.array([e, b1, top]))
            gpu.boxes[("W2", l)] = Box(np.array([s, b0, bottom]), np.array([e, b1, mid]))
        gpus.append(gpu)
    return Layout(config, gpus, tp_gap, dp_gap)

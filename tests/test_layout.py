"""Layout invariants: FLOP blocks sit on their operands, volumes are FLOPs, GPUs never overlap."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from parallelviz.config import ModelConfig, ParallelConfig, RunConfig
from parallelviz.layout import BATCH_AXIS, HIDDEN_AXIS, MODEL_AXIS, build_layout
from parallelviz.schedule import TensorRef


def random_configs(count: int, seed: int = 7) -> list[RunConfig]:
    rng = random.Random(seed)
    configs = [RunConfig(ModelConfig(8, 16, 64, 6), ParallelConfig(dp=dp, tp=tp)) for dp, tp in [(2, 1), (1, 2), (2, 2)]]
    while len(configs) < count:
        dp, tp = rng.randint(1, 4), rng.randint(1, 4)
        model = ModelConfig(rng.randint(1, 12), tp * rng.randint(1, 8), dp * rng.randint(1, 16), rng.randint(1, 5))
        configs.append(RunConfig(model, ParallelConfig(dp=dp, tp=tp)))
    return configs


CONFIGS = random_configs(40)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_flop_boxes_sit_on_their_operands(config):
    layout = build_layout(config)
    L = config.model.layers
    for gpu in layout.gpus:
        for l in range(L):
            box1, box2 = gpu.box(TensorRef("W1", l)), gpu.box(TensorRef("W2", l))
            # W1's block: input x^l at its near hidden end, W1 at the back of the batch, output h^l below.
            assert box1.face(HIDDEN_AXIS, upper=False).same_rectangle(gpu.faces[("x", l)])
            assert box1.face(BATCH_AXIS, upper=True).same_rectangle(gpu.faces[("W1", l)])
            assert box1.face(MODEL_AXIS, upper=False).same_rectangle(gpu.faces[("h", l)])
            # W2's block: input h^l on top, W2 at the back, output (partial) x^{l+1} at its far end.
            assert box2.face(MODEL_AXIS, upper=True).same_rectangle(gpu.faces[("h", l)])
            assert box2.face(BATCH_AXIS, upper=True).same_rectangle(gpu.faces[("W2", l)])
            assert box2.face(HIDDEN_AXIS, upper=True).same_rectangle(gpu.partial_face(TensorRef("x", l + 1)))
            if config.parallel.tp == 1:
                assert gpu.partial_face(TensorRef("x", l + 1)).same_rectangle(gpu.faces[("x", l + 1)])


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_box_volume_is_local_matmul_size(config):
    layout = build_layout(config)
    expected = config.model.d_model * config.local_hidden * config.local_batch
    for gpu in layout.gpus:
        for box in gpu.boxes.values():
            assert box.volume == pytest.approx(expected)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_no_two_gpus_overlap(config):
    layout = build_layout(config)
    for a, b in itertools.combinations(layout.gpus, 2):
        for box_a in a.boxes.values():
            for box_b in b.boxes.values():
                assert not box_a.overlaps(box_b), (a.gpu, b.gpu)
        for key, face in a.faces.items():
            assert not any(face.same_rectangle(other) for other in b.faces.values()), (a.gpu, b.gpu, key)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_everything_finite_and_tensor_sizes_match(config):
    layout = build_layout(config)
    m = config.model
    for gpu in layout.gpus:
        for (name, _), face in gpu.faces.items():
            assert np.all(np.isfinite(face.lo)) and np.all(np.isfinite(face.hi))
            size = sorted(s for s in face.size if s > 0)
            expected = {
                "x": (m.d_model, config.local_batch),
                "h": (config.local_hidden, config.local_batch),
                "W1": (m.d_model, config.local_hidden),
                "W2": (m.d_model, config.local_hidden),
            }[name]
            assert size == pytest.approx(sorted(expected))


def test_seed_geometry_matches_the_notebook():
    """Spot values from the notebook: dp=2, tp=1, dp_gpu_delta=16, layer step d_hidden."""
    layout = build_layout(RunConfig(ModelConfig(8, 16, 64, 6), ParallelConfig(dp=2)))
    replica1 = layout.gpus[1]
    w2 = replica1.faces[("W2", 3)]
    assert w2.position == 32 + 16 + 32  # batch end of replica 1
    assert (w2.lo[HIDDEN_AXIS], w2.hi[HIDDEN_AXIS]) == (48, 64)
    assert (w2.lo[MODEL_AXIS], w2.hi[MODEL_AXIS]) == (-32, -24)
    assert replica1.faces[("x", 6)].position == 96

"""Scene state after construct() with skip_animations: plays, labels, what is visible at the end."""

from __future__ import annotations

import numpy as np
import pytest

from parallelviz.render.mobjects import screen_xy
from parallelviz.schedule import TensorRef
from parallelviz.style import tex_label
from parallelviz.view import FRAME_HEIGHT, FRAME_WIDTH
from tests.render_support import load_scene_classes, run_scene

SCENES = load_scene_classes()


@pytest.fixture(scope="module", params=sorted(SCENES))
def scene(request, tmp_path_factory):
    return run_scene(SCENES[request.param], tmp_path_factory.mktemp(request.param))


def test_one_play_per_schedule_step(scene):
    assert scene.step_plays == len(scene.schedule)
    # intro + steps + closing fade + final wait
    assert scene.renderer.num_plays == len(scene.schedule) + 3


def test_every_weight_ends_as_its_gradient(scene):
    layers = scene.run_config.model.layers
    for gpu in range(scene.schedule.world_size):
        for layer in range(layers):
            for name in ("W1", "W2"):
                slot = (gpu, name, layer)
                state = scene.board.states[slot]
                assert state.role == "gradient"
                assert state.tensor == TensorRef(name, layer, grad=True)
                label = scene.board.labels[slot]
                assert label.tex_string == " ".join([r"\nabla", tex_label(TensorRef(name, layer))])
                assert label in scene.mobjects, "the gradient label is on screen"


def test_no_activation_left_visible(scene):
    names = {name for (_, name, _) in scene.board.states}
    assert names <= {"W1", "W2"}
    family = {m for top in scene.mobjects for m in top.get_family()}
    polygons = [m for m in scene.board.polygons.values() if m in family]
    assert len(polygons) == 2 * scene.run_config.model.layers * scene.schedule.world_size
    assert all(m.get_fill_opacity() > 0 for m in polygons)


def test_sections_follow_the_phases(scene):
    names = [section.name for section in scene.renderer.file_writer.sections]
    expected = ["intro", "forward", "backward"]
    if scene.run_config.parallel.dp > 1 and scene.run_config.parallel.grad_sync == "end":
        expected.append("gradient sync")
    assert [n for n in names if n != "autocreated"] == expected + ["end"]


def test_subcaptions_name_each_phase(scene):
    contents = [sub.content for sub in scene.renderer.file_writer.subcaptions]
    assert contents[:2] == ["Forward pass", "Backward pass"]


def test_flop_prisms_coincide_with_operand_faces(scene):
    """Each FLOP block's faces, as drawn, lie on its operands' faces (W1: x, W1, h)."""
    for gpu in scene.layout.gpus:
        for layer in range(scene.run_config.model.layers):
            prism = scene.prisms[(gpu.gpu, ("W1", layer))]
            lo, hi = prism.get_critical_point(np.array([-1, -1, -1])), prism.get_critical_point(np.array([1, 1, 1]))
            box = gpu.boxes[("W1", layer)]
            assert np.allclose(lo, scene.view.to_scene(box.lo), atol=1e-6)
            assert np.allclose(hi, scene.view.to_scene(box.hi), atol=1e-6)
            x_face = scene.board.face((gpu.gpu, "x", layer))
            assert np.isclose(scene.view.to_scene(x_face.lo)[0], lo[0])


def test_everything_drawn_inside_the_frame(scene):
    for mobject in scene.mobjects:
        points = mobject.get_all_points()
        if len(points) == 0:
            continue
        xy = np.array([screen_xy(scene.view, p)[:2] for p in points])
        assert xy[:, 0].min() >= -FRAME_WIDTH / 2 and xy[:, 0].max() <= FRAME_WIDTH / 2, mobject
        assert xy[:, 1].min() >= -FRAME_HEIGHT / 2 and xy[:, 1].max() <= FRAME_HEIGHT / 2, mobject


def test_gpu_labels_do_not_overlap(scene):
    boxes = []
    for label in scene.gpu_label_texts:
        xy = np.array([screen_xy(scene.view, p)[:2] for p in label.get_all_points()])
        boxes.append((xy.min(axis=0), xy.max(axis=0)))
    for i, (lo1, hi1) in enumerate(boxes):
        for lo2, hi2 in boxes[i + 1 :]:
            assert np.any(np.minimum(hi1, hi2) - np.maximum(lo1, lo2) <= 0)


def test_cost_panel_ends_with_the_cost_model_numbers(scene):
    """The on-screen counters after the last step equal `parallelviz costs --json` for the scene's config."""
    from click.testing import CliRunner

    import json

    from parallelviz.cli import cli

    m, p = scene.run_config.model, scene.run_config.parallel
    args = ["costs", "--json", "--dp", p.dp, "--tp", p.tp, "--layers", m.layers, "--d-model", m.d_model]
    args += ["--d-hidden", m.d_hidden, "--batch", m.batch, "--grad-sync", p.grad_sync]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for row in report["per_gpu"]:
        memory, flops, sent = scene.panel.values[row["gpu"]]
        assert flops == row["flops"]
        assert sent == sum(row["comm_bytes"].values())
        assert scene.panel.texts[row["gpu"]] in scene.mobjects
    # the bars were drawn at the peak: the largest memory shown over the video is the reported peak
    assert scene.panel.max_bytes == max(row["peak_memory_bytes"] for row in report["per_gpu"])

"""Real renders at low resolution: videos are written and change over time; the last frame matches a golden."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.render_support import REPO, image_difference, load_scene_classes, run_scene

SCENES = load_scene_classes()
GOLDEN_DIR = REPO / "tests" / "golden"
TINY = {"pixel_width": 256, "pixel_height": 144, "frame_rate": 6, "upto_animation_number": 10}
"""Tiny renders of the first plays (intro, the first forward steps, a tensor-parallel all-reduce):
the whole of each scene is constructed by tests/test_scenes.py, and its end is the golden frame."""
GOLDEN_SIZE = {"pixel_width": 480, "pixel_height": 270}
GOLDEN_TOLERANCE = 1.5
"""Mean absolute difference per channel (0..255) allowed between a render and its golden."""
GOLDEN_TILE_TOLERANCE = 8.0
"""The same, for each of 8 x 8 tiles: a change confined to a small region (a label, a counter) must still fail."""


def read_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.render
@pytest.mark.parametrize("name", sorted(SCENES))
def test_low_resolution_render_writes_a_changing_video(name, tmp_path):
    scene = run_scene(SCENES[name], tmp_path, skip_animations=False, write_to_movie=True, format="mp4", **TINY)
    video = Path(scene.renderer.file_writer.movie_file_path)
    assert video.exists() and video.stat().st_size > 10_000
    frames = read_frames(video)
    seconds = scene.renderer.time
    assert len(frames) == pytest.approx(seconds * TINY["frame_rate"], rel=0.05)
    assert frames[0].shape == (TINY["pixel_height"], TINY["pixel_width"], 3)
    # The picture changes over time: sample frames across the video and require them to differ.
    samples = [frames[i] for i in np.linspace(0, len(frames) - 1, 8).astype(int)]
    differences = [image_difference(a, b) for a, b in zip(samples, samples[1:])]
    assert all(d > 0.05 for d in differences), differences
    # No stray temporary files where the finished video is expected.
    assert sorted(p.suffix for p in video.parent.iterdir() if p.is_file()) in ([".mp4"], [".mp4", ".srt"])
    assert video.with_suffix(".srt").exists()


@pytest.mark.render
def test_last_frame_matches_golden(tmp_path):
    scene = run_scene(SCENES["DataParallel"], tmp_path, save_last_frame=True, **GOLDEN_SIZE)
    frame = scene.renderer.get_frame()
    golden = GOLDEN_DIR / "DataParallel_last.png"
    from PIL import Image

    if os.environ.get("PARALLELVIZ_REFRESH_GOLDEN") or not golden.exists():
        GOLDEN_DIR.mkdir(exist_ok=True)
        Image.fromarray(frame).convert("RGB").save(golden)
        if not os.environ.get("PARALLELVIZ_REFRESH_GOLDEN"):
            pytest.fail(f"no golden frame yet: wrote {golden}; look at it, commit it, and rerun")
    expected = np.asarray(Image.open(golden).convert("RGB"))
    assert expected.shape[:2] == frame.shape[:2]
    difference = image_difference(frame, expected)
    assert difference < GOLDEN_TOLERANCE, f"last frame differs from {golden} by {difference:.2f}"
    rows, cols = np.array_split(np.arange(frame.shape[0]), 8), np.array_split(np.arange(frame.shape[1]), 8)
    worst = max(image_difference(frame[np.ix_(r, c)], expected[np.ix_(r, c)]) for r in rows for c in cols)
    assert worst < GOLDEN_TILE_TOLERANCE, f"a tile of the last frame differs from {golden} by {worst:.2f}"


@pytest.mark.render
def test_cli_render_writes_the_finished_video_only(tmp_path):
    from click.testing import CliRunner

    from parallelviz.cli import cli

    output = tmp_path / "out" / "tp.mp4"
    result = CliRunner().invoke(cli, ["render", "--dp", "1", "--tp", "2", "--layers", "1", "--quality", "l", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(output)
    frames = read_frames(output)
    assert frames[0].shape == (480, 854, 3)
    assert image_difference(frames[0], frames[-1]) > 1.0
    # the scratch media folder is gone; only the video and its subtitles remain
    assert sorted(p.name for p in output.parent.iterdir()) == ["tp.mp4", "tp.srt"]


def test_cli_render_rejects_bad_input_before_writing(tmp_path):
    from click.testing import CliRunner

    from parallelviz.cli import cli

    output = tmp_path / "bad.mp4"
    result = CliRunner().invoke(cli, ["render", "--batch", "63", "-o", str(output)])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: batch must be divisible by dp=2 (got 63)"
    assert not output.exists() and list(tmp_path.iterdir()) == []

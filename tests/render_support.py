"""Helpers for render tests: run a scene under a temporary Manim config and read its output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TEX_CACHE = REPO / "media" / "Tex"


def manim_config(tmp_path: Path, **overrides: object) -> dict:
    """A tempconfig dict writing into ``tmp_path`` but sharing the repo's LaTeX cache."""
    settings = {
        "media_dir": str(tmp_path),
        "tex_dir": str(TEX_CACHE),
        "disable_caching": True,
        "verbosity": "WARNING",
        "progress_bar": "none",
        "write_to_movie": False,
        "save_last_frame": False,
        "format": None,
    }
    settings.update(overrides)
    return settings


def run_scene(scene_cls: type, tmp_path: Path, skip_animations: bool = True, **overrides: object):
    """Construct and render ``scene_cls`` under a temporary config; returns the scene."""
    from manim import tempconfig

    with tempconfig(manim_config(tmp_path, **overrides)):
        scene = scene_cls(skip_animations=skip_animations)
        scene.render()
    return scene


def load_scene_classes() -> dict[str, type]:
    """The scene classes of ``scenes/dp_tp.py``, by name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scenes_dp_tp", REPO / "scenes" / "dp_tp.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return {name: getattr(module, name) for name in ("DataParallel", "TensorParallel", "DataTensorParallel", "DataParallelOverlap")}


def image_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two RGB(A) images, 0..255."""
    return float(np.abs(a[..., :3].astype(float) - b[..., :3].astype(float)).mean())

"""Render a poster PNG of each scene (a frame from the middle of the backward pass) into docs/posters/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from manim import tempconfig

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "posters"


def main() -> None:
    spec = importlib.util.spec_from_file_location("scenes_dp_tp", REPO / "scenes" / "dp_tp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.insert(0, str(REPO))
    from parallelviz.config import RunConfig
    from parallelviz.schedules import build_schedule

    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("DataParallel", "TensorParallel", "DataTensorParallel"):
        scene_cls = getattr(module, name)
        schedule = build_schedule(RunConfig(scene_cls.model, scene_cls.parallel))
        phases = [step.phase for step in schedule]
        # intro play, the forward pass, the loss, then about two blocks of the backward pass
        stop = 1 + phases.index("backward") + 1 + 2 * (len([p for p in phases if p == "backward"]) // 6)
        settings = {
            "media_dir": str(REPO / "media"),
            "save_last_frame": True,
            "write_to_movie": False,
            "upto_animation_number": stop,
            "pixel_width": 960,
            "pixel_height": 540,
            "progress_bar": "none",
            "verbosity": "WARNING",
            "disable_caching": True,
        }
        with tempconfig(settings):
            scene = scene_cls()
            scene.render()
            from PIL import Image

            Image.fromarray(scene.renderer.get_frame()).convert("RGB").save(OUT / f"{name}.png", optimize=True)
        print(OUT / f"{name}.png")


if __name__ == "__main__":
    main()

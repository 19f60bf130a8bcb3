"""Render any configuration to a video file, for `parallelviz render`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from manim import tempconfig

from parallelviz.config import RunConfig
from parallelviz.render.scene import ParallelismScene, require_latex

__all__ = ["QUALITIES", "scene_for", "render_config"]

QUALITIES = {
    "l": "low_quality",
    "m": "medium_quality",
    "h": "high_quality",
    "p": "production_quality",
    "k": "fourk_quality",
}
"""Manim's quality presets by the letter of its ``-q`` flag."""


def scene_for(config: RunConfig, title: str | None = None) -> type[ParallelismScene]:
    """A scene class animating ``config``, titled after its parallelism unless ``title`` is given."""
    p = config.parallel
    default = f"dp={p.dp} x tp={p.tp}" + (", overlapped all-reduce" if p.grad_sync == "overlap" and p.dp > 1 else "")
    return type(
        "ParallelvizScene",
        (ParallelismScene,),
        {"model": config.model, "parallel": config.parallel, "title": title or default},
    )


def render_config(config: RunConfig, quality: str, output: Path, title: str | None = None) -> Path:
    """Render ``config`` to ``output`` (mp4); the file appears only once it is complete.

    Manim writes into a temporary media folder; the finished video (and its ``.srt``
    subtitles) is then moved into place with an atomic rename.
    """
    require_latex()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    repo_tex = Path("media") / "Tex"
    with tempfile.TemporaryDirectory(prefix="parallelviz-", dir=output.parent) as scratch:
        settings = {
            "quality": QUALITIES[quality],
            "media_dir": scratch,
            "tex_dir": str(repo_tex.resolve()) if repo_tex.is_dir() else str(Path(scratch) / "Tex"),
            "output_file": "video",
            "disable_caching": True,
            "progress_bar": "none",
            "verbosity": "WARNING",
        }
        with tempconfig(settings):
            scene = scene_for(config, title)()
            scene.render()
            movie = Path(scene.renderer.file_writer.movie_file_path)
        subtitles = movie.with_suffix(".srt")
        if subtitles.exists():
            os.replace(subtitles, output.with_suffix(".srt"))
        os.replace(movie, output)
    return output

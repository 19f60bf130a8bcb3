"""Benchmark: render each scene, and compare with the cost of only encoding a video of the same length.

Usage: python tools/bench.py [QUALITY] [SCENE ...]   (QUALITY: l, m, h; default h)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUALITY_DIRS = {"l": "480p15", "m": "720p30", "h": "1080p60", "p": "1440p60", "k": "2160p60"}


def duration(video: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(video)],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout)


def encode_only(video: Path) -> float:
    """Seconds to decode and re-encode the video with the same codec: the floor for rendering it."""
    start = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "null", "-"],
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    quality = sys.argv[1] if len(sys.argv) > 1 else "h"
    sys.path.insert(0, str(REPO))
    from parallelviz.scenes_in import scene_names

    scenes = sys.argv[2:] or scene_names(REPO / "scenes" / "dp_tp.py")
    manim = REPO / ".venv" / "bin" / "manim"
    print(f"{'scene':<22} {'render s':>9} {'video s':>8} {'encode s':>9} {'render/encode':>14}")
    for scene in scenes:
        start = time.perf_counter()
        subprocess.run([str(manim), f"-q{quality}", "--progress_bar", "none", "-v", "WARNING", "scenes/dp_tp.py", scene],
                       cwd=REPO, check=True)
        rendered = time.perf_counter() - start
        video = REPO / "media" / "videos" / "dp_tp" / QUALITY_DIRS[quality] / f"{scene}.mp4"
        encoded = encode_only(video)
        print(f"{scene:<22} {rendered:9.1f} {duration(video):8.1f} {encoded:9.1f} {rendered / encoded:14.1f}", flush=True)


if __name__ == "__main__":
    main()

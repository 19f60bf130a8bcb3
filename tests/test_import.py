"""The pure core must not import manim (the CLI starts fast and runs without a display stack)."""

from __future__ import annotations

import subprocess
import sys


def test_import_parallelviz_does_not_import_manim():
    code = (
        "import sys, parallelviz, parallelviz.cli, parallelviz.checker, parallelviz.executor, "
        "parallelviz.costs, parallelviz.layout, parallelviz.visual, parallelviz.view, parallelviz.style; "
        "print('manim' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_render_package_does_import_manim():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, parallelviz.render; print('manim' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "True"

"""Manim rendering of parallelviz schedules; the only package that imports manim."""

from __future__ import annotations

from parallelviz.render.scene import ParallelismMixin, ParallelismScene

__all__ = ["ParallelismMixin", "ParallelismScene"]

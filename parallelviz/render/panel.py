"""The cost panel: per-GPU memory bars stacked by category and running FLOP / communication counters."""

from __future__ import annotations

from typing import Callable

import numpy as np
from manim import (
    DOWN,
    LEFT,
    RIGHT,
    UP,
    Animation,
    Mobject,
    Rectangle,
    ReplacementTransform,
    Text,
    VGroup,
)

from parallelviz.costs import Costs, MemoryBreakdown, format_bytes, format_flops
from parallelviz.render.glyphs import GlyphWriter
from parallelviz.style import Style

__all__ = ["CostPanel", "MEMORY_CATEGORIES"]

MEMORY_CATEGORIES = ("params", "grads", "optimizer", "activations")


def _fit_width(mobject: Mobject, width: float) -> Mobject:
    if mobject.width > width:
        mobject.scale_to_fit_width(width)
    return mobject


class CostPanel:
    """Numbers from the cost model, laid out in screen coordinates at the right of the frame.

    Mobjects are built flat (screen coordinates); the scene lifts them into view.

    Parameters
    ----------
    costs
        The cost model of the scene's schedule.
    style
        Colours.
    top_left
        Screen point of the panel's top-left corner.
    width
        Panel width in screen units.
    place
        Moves a mobject built in screen coordinates into the scene.
    """

    def __init__(
        self,
        costs: Costs,
        style: Style,
        top_left: np.ndarray,
        width: float,
        place: Callable[[Mobject], Mobject],
    ) -> None:
        self.place = place
        self.costs = costs
        self.style = style
        self.top_left = np.asarray(top_left, dtype=float)
        self.width = width
        self.colors = {
            "params": style.weight_color,
            "grads": style.gradient_color,
            "optimizer": style.optimizer_color,
            "activations": style.activation_color,
        }
        peaks = [max(m.total for m in (costs.initial_memory[g], *costs.memory_timeline[g])) for g in range(len(costs.per_gpu))]
        self.max_bytes = max(peaks) or 1
        self.row_height = min(0.7, 3.2 / len(costs.per_gpu))
        self.bars: dict[int, VGroup] = {}
        self.texts: dict[int, VGroup] = {}
        self.writer = GlyphWriter(font_size=13, color=style.ink_color)
        self.values: dict[int, tuple[int, int, int]] = {}

    # ------------------------------------------------------------------ layout
    def _row_origin(self, gpu: int) -> np.ndarray:
        return self.top_left + np.array([0.0, -0.95 - gpu * self.row_height, 0.0])

    def header(self) -> VGroup:
        """Title and a key of the memory categories."""
        ink = self.style.ink_color
        title = Text("Per GPU: memory, FLOPs, bytes sent", font_size=14, color=ink, weight="BOLD")
        _fit_width(title, self.width)
        title.move_to(self.top_left, aligned_edge=UP + LEFT)
        key = VGroup()
        for name in MEMORY_CATEGORIES:
            swatch = Rectangle(width=0.12, height=0.12).set_fill(self.colors[name], 0.8).set_stroke(width=0)
            key.add(VGroup(swatch, Text(name, font_size=11, color=ink)).arrange(RIGHT, buff=0.05))
        _fit_width(key.arrange(RIGHT, buff=0.12), self.width)
        key.next_to(title, DOWN, aligned_edge=LEFT, buff=0.1)
        return VGroup(title, key)

    def _bar_geometry(self, gpu: int) -> tuple[float, float, float]:
        """Left end, full length and height (y) of a row's bar."""
        return self._row_origin(gpu)[0], self.width, self._row_origin(gpu)[1]

    def row_frame(self, gpu: int) -> VGroup:
        """The static part of a row: the GPU's name and the bar's outline."""
        origin = self._row_origin(gpu)
        label = Text(f"GPU {gpu}", font_size=13, color=self.style.ink_color, weight="BOLD")
        label.move_to(origin + np.array([0.0, 0.11, 0.0]), aligned_edge=LEFT + DOWN)
        start, full, y = self._bar_geometry(gpu)
        frame = Rectangle(width=full, height=0.16).set_stroke(self.style.ink_color, width=0.8, opacity=0.5)
        frame.move_to(np.array([start + full / 2, y, 0.0]))
        return VGroup(label, frame)

    def bar(self, gpu: int, memory: MemoryBreakdown) -> VGroup:
        """The bar's filling, one segment per category, length proportional to bytes."""
        start, full, y = self._bar_geometry(gpu)
        segments = VGroup()
        x = start
        for name in MEMORY_CATEGORIES:
            length = full * getattr(memory, name) / self.max_bytes
            if length <= 1e-6:
                continue
            segment = Rectangle(width=length, height=0.16).set_fill(self.colors[name], 0.85).set_stroke(width=0)
            segment.move_to(np.array([x + length / 2, y, 0.0]))
            segments.add(segment)
            x += length
        return segments

    def text(self, gpu: int, memory: int, flops: int, sent: int) -> VGroup:
        """The row's numbers: memory held (beside the GPU's name), FLOPs and bytes sent so far (under the bar)."""
        start, full, y = self._bar_geometry(gpu)
        held = self.writer.write(format_bytes(memory))
        held.move_to(np.array([start + full, y + 0.11, 0.0]), aligned_edge=RIGHT + DOWN)
        line = f"{format_flops(flops):>12}  sent {format_bytes(sent):>8}"
        counters = self.writer.write(line)
        counters.scale(min(1.0, full / (len(line) * self.writer.advance)), about_point=np.zeros(3))
        counters.move_to(np.array([start + full, y - 0.11, 0.0]), aligned_edge=RIGHT + UP)
        return VGroup(held, counters)

    # ------------------------------------------------------------------ state
    def initial(self) -> list[Mobject]:
        """Header and every row before the first step."""
        mobjects: list[Mobject] = [self.place(self.header())]
        for gpu in range(len(self.costs.per_gpu)):
            memory = self.costs.initial_memory[gpu]
            mobjects.append(self.place(self.row_frame(gpu)))
            self.bars[gpu] = self.place(self.bar(gpu, memory))
            self.texts[gpu] = self.place(self.text(gpu, memory.total, 0, 0))
            self.values[gpu] = (memory.total, 0, 0)
            mobjects += [self.bars[gpu], self.texts[gpu]]
        return mobjects

    def update(self, step: int) -> tuple[list[Animation], list[tuple[Mobject, Mobject]]]:
        """Bar animations and text swaps for the state after ``step``.

        Returns
        -------
        animations
            Bars growing or shrinking (only rows whose memory changed).
        swaps
            ``(old, new)`` text pairs to replace at once.
        """
        animations, swaps = [], []
        for gpu in range(len(self.costs.per_gpu)):
            memory = self.costs.memory_timeline[gpu][step]
            values = (memory.total, self.costs.flops_timeline[gpu][step], self.costs.comm_timeline[gpu][step])
            if values == self.values[gpu]:
                continue
            if memory.total != self.values[gpu][0]:
                new_bar = self.place(self.bar(gpu, memory))
                animations.append(ReplacementTransform(self.bars[gpu], new_bar))
                self.bars[gpu] = new_bar
            new_text = self.place(self.text(gpu, *values))
            swaps.append((self.texts[gpu], new_text))
            self.texts[gpu] = new_text
            self.values[gpu] = values
        return animations, swaps

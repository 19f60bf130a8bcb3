"""ParallelismScene: a ThreeDScene that animates a schedule step by step."""

from __future__ import annotations

import shutil
from typing import ClassVar

import numpy as np
from manim import (
    DEGREES,
    DOWN,
    DR,
    LEFT,
    UL,
    UR,
    AnimationGroup,
    FadeIn,
    FadeOut,
    Line,
    MathTex,
    Mobject,
    Square,
    Succession,
    Text,
    ThreeDScene,
    VGroup,
    there_and_back,
)

from parallelviz.config import ModelConfig, ParallelConfig, RunConfig
from parallelviz.costs import compute_costs
from parallelviz.layout import Layout, build_layout
from parallelviz.render.board import TensorBoard
from parallelviz.render.mobjects import (
    OVERLAY_Z,
    ROLE_COLORS,
    billboard,
    flop_prism,
    lift,
    screen_xy,
)
from parallelviz.render.panel import CostPanel
from parallelviz.schedule import OpKind, Schedule, TensorRef
from parallelviz.schedules import build_schedule
from parallelviz.style import DEFAULT_STYLE, PHASE_CAPTIONS, Style, step_formula
from parallelviz.view import FRAME_HEIGHT, FRAME_WIDTH, View, fit_view
from parallelviz.visual import PARTIAL_SLOT, Slot, StepView, initial_faces, visual_steps

__all__ = ["ParallelismMixin", "ParallelismScene", "require_latex"]

TOP_BAND = 1.25
"""Screen height kept for the title and phase caption."""
BOTTOM_BAND = 0.75
"""Screen height kept for the step's formula."""
MARGIN = 0.3
PANEL_WIDTH = 3.1
"""Screen width kept at the right for the legend and the cost display."""


def require_latex() -> None:
    """Fail with a clear message when LaTeX is missing (Manim would raise a bare FileNotFoundError)."""
    missing = [tool for tool in ("latex", "dvisvgm") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not found: MathTex labels need LaTeX. Run `make setup` "
            "(or: apt-get install texlive-latex-base texlive-latex-recommended "
            "texlive-latex-extra texlive-fonts-recommended dvisvgm)"
        )


class ParallelismMixin:
    """Animates the schedule of a run on a ``ThreeDScene``.

    Set the run as class attributes and call :meth:`play_schedule` (the default
    ``construct`` does everything).

    Parameters
    ----------
    model, parallel
        The run (class attributes).
    schedule_name
        The registered builder to use.
    title
        Shown at the top left.
    phi, theta
        Camera angles in degrees.
    style
        Colours, sizes and timing.

    Examples
    --------
    ::

        class MyScene(ParallelismScene):
            parallel = ParallelConfig(dp=4, tp=2)
    """

    model: ClassVar[ModelConfig] = ModelConfig()
    parallel: ClassVar[ParallelConfig] = ParallelConfig()
    schedule_name: ClassVar[str] = "dp_tp"
    title: ClassVar[str] = "Parallel training"
    phi: ClassVar[float] = 66.0
    theta: ClassVar[float] = -60.0
    style: ClassVar[Style] = DEFAULT_STYLE

    # ------------------------------------------------------------------ set-up
    def setup_parallelism(self) -> None:
        """Build the run, its schedule, layout, view and static mobjects."""
        require_latex()
        self.run_config = RunConfig(self.model, self.parallel)
        self.schedule: Schedule = build_schedule(self.run_config, self.schedule_name)
        self.layout: Layout = build_layout(self.run_config)
        region = (
            -FRAME_WIDTH / 2 + MARGIN,
            -FRAME_HEIGHT / 2 + BOTTOM_BAND,
            FRAME_WIDTH / 2 - PANEL_WIDTH,
            FRAME_HEIGHT / 2 - TOP_BAND,
        )
        self.view: View = fit_view(self._drawn_corners(), self.phi * DEGREES, self.theta * DEGREES, region)
        self.board = TensorBoard(self.layout, self.view, self.style)
        self.prisms = {
            (gpu.gpu, weight): flop_prism(box, self.view, self.style)
            for gpu in self.layout.gpus
            for weight, box in gpu.boxes.items()
        }
        self.costs = compute_costs(self.schedule)
        self.panel = CostPanel(
            self.costs,
            self.style,
            top_left=np.array([FRAME_WIDTH / 2 - PANEL_WIDTH + MARGIN, FRAME_HEIGHT / 2 - TOP_BAND, 0.0]),
            width=PANEL_WIDTH - 2 * MARGIN,
            place=self.on_screen,
        )
        self.step_plays = 0
        self.camera.background_color = self.style.background_color
        self.set_camera_orientation(phi=self.phi * DEGREES, theta=self.theta * DEGREES, focal_distance=2000)

    def _drawn_corners(self) -> np.ndarray:
        """Every face corner, plus room under the last blocks for the GPU labels."""
        corners = np.vstack([face.corners for gpu in self.layout.gpus for face in gpu.faces.values()])
        lowered = corners.copy()
        lowered[:, 2] -= (0.4 + 0.3 * self.run_config.parallel.tp) * self.run_config.model.d_model
        return np.vstack([corners, lowered])

    def on_screen(self, mobject: Mobject) -> Mobject:
        """Lift a mobject laid out in screen coordinates into the scene (see :func:`lift`), above everything."""
        return lift(mobject, self.view).set_z_index(OVERLAY_Z)

    # ------------------------------------------------------------- chrome
    def chrome(self) -> list[Mobject]:
        """Title, configuration, legend, axes and GPU labels (static)."""
        m, p = self.run_config.model, self.run_config.parallel
        ink = self.style.ink_color
        title = Text(self.title, font_size=30, color=ink, weight="BOLD").to_corner(UL, buff=MARGIN)
        config_line = Text(
            f"d_model={m.d_model}  d_hidden={m.d_hidden}  batch={m.batch}  layers={m.layers}   "
            f"dp={p.dp}  tp={p.tp}  ({p.world_size} GPUs)",
            font_size=18,
            color=ink,
        )
        config_line.next_to(title, DOWN, aligned_edge=LEFT, buff=0.15)
        overlays = [*self.axes(), *self.gpu_labels()]
        for mobject in overlays:
            mobject.set_z_index(OVERLAY_Z)
        return [
            *overlays,
            self.on_screen(title),
            self.on_screen(config_line),
            self.legend(),
            *self.panel.initial(),
        ]

    def legend(self) -> VGroup:
        """Colour key at the bottom right."""
        colors = ROLE_COLORS(self.style)
        entries = [("weight", colors["weight"]), ("activation", colors["activation"]), ("gradient", colors["gradient"])]
        if self.run_config.parallel.tp > 1:
            entries.append(("partial sum", colors["partial"]))
        entries += [("matmul FLOPs", self.style.flop_color), ("communication", self.style.comm_color)]
        items = VGroup()
        for name, color in entries:
            swatch = Square(0.16).set_fill(color, opacity=0.6).set_stroke(color, width=1.5)
            text = Text(name, font_size=14, color=self.style.ink_color)
            items.add(VGroup(swatch, text).arrange(np.array([1, 0, 0]), buff=0.08))
        items.arrange(np.array([0, -1, 0]), aligned_edge=np.array([-1, 0, 0]), buff=0.08)
        return self.on_screen(items.to_corner(DR, buff=MARGIN))

    def axes(self) -> list[Mobject]:
        """The seed's three dimension lines, one local tensor dimension each, as a key at the bottom left."""
        m, p = self.run_config.model, self.run_config.parallel
        texts = {
            "d_model": rf"d_{{model}}={m.d_model}",
            "d_hidden": rf"d_{{hidden}}{'/' + str(p.tp) if p.tp > 1 else ''}={self.run_config.local_hidden}",
            "batch": rf"\text{{batch}}{'/' + str(p.dp) if p.dp > 1 else ''}={self.run_config.local_batch}",
        }
        mobjects: list[Mobject] = []
        arrows = self.layout.axis_arrows()
        # A key in the empty bottom-left corner, at the staircase's scale and orientation.
        origin = screen_xy(self.view, self.view.to_scene(next(iter(arrows.values()))[0]))
        target = np.array([-FRAME_WIDTH / 2 + MARGIN + 1.3, -FRAME_HEIGHT / 2 + BOTTOM_BAND + 0.7, 0.0])
        shift = self.view.rotation.T @ (target - origin)
        ends = [screen_xy(self.view, self.view.to_scene(end)) + target - origin for _, end in arrows.values()]
        centroid = (target + sum(ends)) / 4  # each label goes on the side away from the other lines
        for name, (start, end) in arrows.items():
            a, b = self.view.to_scene(start) + shift, self.view.to_scene(end) + shift
            line = Line(a, b, color=self.style.ink_color, stroke_width=2.5)
            label = MathTex(texts[name], color=self.style.ink_color, font_size=20)
            mid = (screen_xy(self.view, a) + screen_xy(self.view, b)) / 2
            along = screen_xy(self.view, b) - screen_xy(self.view, a)
            normal = np.array([-along[1], along[0], 0.0])
            if np.dot(normal, mid - centroid) < 0:
                normal = -normal
            direction = normal / np.linalg.norm(normal)
            # snap to the closest of the eight compass directions so next_to aligns cleanly
            angle = np.round(np.arctan2(direction[1], direction[0]) / (np.pi / 4)) * (np.pi / 4)
            direction = np.array([np.cos(angle), np.sin(angle), 0.0])
            mobjects += [line, billboard(label, self.view, (a + b) / 2, direction, buff=0.08)]
        return mobjects

    def gpu_labels(self) -> list[Mobject]:
        """``GPU r`` under the last block of each GPU, where the staircase leaves empty space.

        Above the first blocks the labels of one replica would fall on the next
        replica's activations; below the last ``W2`` nothing is ever drawn.
        Side-by-side tensor-parallel shards are staggered, with a leader line.
        """
        labels = []
        self.gpu_label_texts = []
        last = self.run_config.model.layers - 1
        for gpu in self.layout.gpus:
            face = gpu.faces[("W2", last)]
            anchor = self.view.to_scene(np.array([face.center[0], face.lo[1], face.lo[2]]))
            _, shard = self.run_config.coords(gpu.gpu)
            drop = 0.1 + 0.3 * shard  # stagger side-by-side tensor-parallel shards
            text = Text(f"GPU {gpu.gpu}", font_size=16, color=self.style.ink_color, weight="BOLD")
            label = billboard(text, self.view, anchor, DOWN, buff=drop)
            self.gpu_label_texts.append(label)
            if shard:
                end = self.view.rotation.T @ (screen_xy(self.view, anchor) - np.array([0, drop - 0.02, 0]))
                label = VGroup(label, Line(anchor, end, color=self.style.ink_color, stroke_width=1))
            labels.append(label)
        return labels

    # ------------------------------------------------------------- steps
    def caption(self, phase: str) -> Text:
        """The phase caption at the top right."""
        color = {"forward": self.style.activation_color, "backward": self.style.gradient_color}.get(phase, self.style.comm_color)
        text = Text(PHASE_CAPTIONS.get(phase, phase), font_size=30, color=color, weight="BOLD")
        return self.on_screen(text.to_corner(UR, buff=MARGIN))

    def formula(self, step_view: StepView) -> MathTex:
        """What GPU 0 computes in this step, centred at the bottom."""
        tex = step_formula(step_view.step.on_gpu(0)) or r"\ "
        label = MathTex(tex, color=self.style.ink_color, font_size=30)
        return self.on_screen(label.move_to([0, -FRAME_HEIGHT / 2 + BOTTOM_BAND / 2 + 0.05, 0]))

    def step_animation(self, step_view: StepView) -> AnimationGroup:
        """One schedule step as one animation: FLOP blocks flash, data travels, faces change."""
        flashes = [
            self.prisms[(gpu, (w.name, w.layer))]
            .animate(rate_func=there_and_back)
            .set_fill(opacity=self.style.flop_opacity)
            .set_stroke(opacity=0.7)
            for gpu, w in step_view.lit
        ]
        travels, landings = [], []
        for kind, tensor, group in step_view.collectives:
            if kind != OpKind.ALL_REDUCE:
                continue
            sources = [self._source_slot(gpu, tensor) for gpu in group]
            travels += [self.board.travel(src, (dst, tensor.name, tensor.layer)) for src in sources for dst in group]
            landings += [(dst, tensor.name, tensor.layer) for dst in group]
        updates = self.board.transition(step_view.faces)
        unchanged = [slot for slot in landings if slot in self.board.polygons and slot not in self.board.last_changed]
        updates += [self.board.pulse(slot) for slot in unchanged]
        run_time = self._step_seconds(step_view)
        if travels:
            changes = Succession(AnimationGroup(*travels), AnimationGroup(*updates))
            return AnimationGroup(*flashes, changes, run_time=run_time)
        return AnimationGroup(*flashes, *updates, run_time=run_time)

    def _source_slot(self, gpu: int, tensor: TensorRef) -> Slot:
        state_slot = (gpu, PARTIAL_SLOT, tensor.layer)
        if tensor.name == "x" and not tensor.grad and state_slot in self.board.states:
            return state_slot
        return (gpu, tensor.name, tensor.layer)

    def play_schedule(self) -> None:
        """Intro, then one ``play`` per schedule step, with sections and subcaptions per phase."""
        self.setup_parallelism()
        self.add(*self.prisms.values())
        self.add(*self.chrome())
        weights = self.board.show(initial_faces(self.schedule))
        self.next_section("intro")
        self.play(AnimationGroup(*(FadeIn(m) for m in weights), lag_ratio=0.01), run_time=1.5)
        caption: Mobject | None = None
        formula: Mobject | None = None
        current_phase: str | None = None
        views = list(visual_steps(self.schedule))
        for step_view in views:
            phase = step_view.step.phase
            if phase != current_phase:
                current_phase = phase
                self.next_section(phase)
                steps_in_phase = [v for v in views if v.step.phase == phase]
                duration = sum(self._step_seconds(v) for v in steps_in_phase)
                self.add_subcaption(PHASE_CAPTIONS.get(phase, phase), duration=duration)
                new_caption = self.caption(phase)
                self.swap(caption, new_caption)
                caption = new_caption
            new_formula = self.formula(step_view)
            self.swap(formula, new_formula)
            formula = new_formula
            bars, swaps = self.panel.update(step_view.index)
            for old, new in swaps:
                self.swap(old, new)
            animation = self.step_animation(step_view)
            self.play(animation, *bars, run_time=animation.run_time)
            self.step_plays += 1
        self.next_section("end")
        self.play(FadeOut(formula), run_time=0.5)
        self.wait(1.5)

    def swap(self, old: Mobject | None, new: Mobject) -> None:
        """Replace a caption at once: text that cross-fades is unreadable mid-way."""
        if old is not None:
            self.remove(old)
        self.add(new)

    def _step_seconds(self, step_view: StepView) -> float:
        return self.style.comm_seconds if step_view.collectives else self.style.step_seconds


class ParallelismScene(ParallelismMixin, ThreeDScene):
    """A ThreeDScene that animates ``schedule_name`` for ``model`` and ``parallel``."""

    def construct(self) -> None:
        self.play_schedule()

"""The tensor faces and labels on screen, and the animations that move them from one state to the next."""

from __future__ import annotations

from manim import (
    Animation,
    FadeIn,
    FadeOut,
    MathTex,
    Polygon,
    ReplacementTransform,
    Transform,
    TransformMatchingTex,
    there_and_back,
)

from parallelviz.layout import Face, Layout
from parallelviz.render.mobjects import (
    GHOST_Z,
    LABEL_Z,
    ROLE_COLORS,
    billboard,
    face_polygon,
    fit_to_face,
)
from parallelviz.schedule import TensorRef
from parallelviz.style import Style, tex_label
from parallelviz.view import View
from parallelviz.visual import PARTIAL_SLOT, FaceState, Slot

__all__ = ["TensorBoard"]


class TensorBoard:
    """Owns one polygon and one label per visible tensor slot.

    Methods return animations and update the board's bookkeeping to the state the
    animations end in; the scene plays them.

    Parameters
    ----------
    layout
        Geometry of every GPU.
    view
        Camera and scale.
    style
        Colours and sizes.
    """

    def __init__(self, layout: Layout, view: View, style: Style) -> None:
        self.layout = layout
        self.view = view
        self.style = style
        self.states: dict[Slot, FaceState] = {}
        self.polygons: dict[Slot, Polygon] = {}
        self.labels: dict[Slot, MathTex] = {}
        self._colors = ROLE_COLORS(style)

    def face(self, slot: Slot) -> Face:
        """Geometry of a slot."""
        gpu, name, layer = slot
        gpu_layout = self.layout.gpus[gpu]
        if name == PARTIAL_SLOT:
            return gpu_layout.partial_face(TensorRef("x", layer))
        return gpu_layout.faces[(name, layer)]

    def polygon(self, slot: Slot, role: str) -> Polygon:
        """A new polygon for a slot in a role's colour."""
        return face_polygon(self.face(slot), self.view, self._colors[role], self.style)

    def label(self, slot: Slot, tensor: TensorRef) -> MathTex:
        """A new label for a slot; a gradient label is split as ``\\nabla`` + name for matching."""
        tex = tex_label(tensor.value)
        parts = (r"\nabla", tex) if tensor.grad else (tex,)
        label = MathTex(*parts, color=self.style.ink_color, font_size=self.style.label_font_size)
        fit_to_face(label, self.face(slot), self.view)
        label.set_z_index(LABEL_Z)
        return billboard(label, self.view, self.view.to_scene(self.face(slot).label_point))

    def labelled(self, slot: Slot) -> bool:
        """Whether a slot shows a label.

        ``x`` is replicated across a tensor-parallel group (every shard holds the same
        values), so its label is shown once, on the group's first GPU; the faces of the
        other shards sit between blocks where a label would land on a neighbour's.
        Partial sums differ per shard and keep their labels.
        """
        gpu, name, _ = slot
        return not (name == "x" and self.layout.config.coords(gpu)[1] > 0)

    def transition(self, target: dict[Slot, FaceState]) -> list[Animation]:
        """Animations from the current faces to ``target``; the board then holds ``target``."""
        animations: list[Animation] = []
        self.last_changed: set[Slot] = set()
        for slot in sorted(set(self.states) | set(target)):
            old, new = self.states.get(slot), target.get(slot)
            if old == new:
                continue
            self.last_changed.add(slot)
            labelled = self.labelled(slot)
            if old is None:
                polygon = self.polygon(slot, new.role)
                animations.append(FadeIn(polygon))
                if labelled:
                    self.labels[slot] = self.label(slot, new.tensor)
                    animations.append(FadeIn(self.labels[slot]))
            elif new is None:
                animations.append(FadeOut(self.polygons.pop(slot)))
                if labelled:
                    animations.append(FadeOut(self.labels.pop(slot)))
                del self.states[slot]
                continue
            else:
                polygon = self.polygon(slot, new.role)
                animations.append(ReplacementTransform(self.polygons[slot], polygon))
                if labelled and new.tensor != old.tensor:
                    new_label = self.label(slot, new.tensor)
                    animations.append(TransformMatchingTex(self.labels[slot], new_label))
                    self.labels[slot] = new_label
            self.states[slot], self.polygons[slot] = new, polygon
        return animations

    def show(self, target: dict[Slot, FaceState]) -> list:
        """Create the mobjects of ``target`` at once (no animation); returns them to add."""
        mobjects = []
        for slot, state in sorted(target.items()):
            self.states[slot] = state
            self.polygons[slot] = self.polygon(slot, state.role)
            mobjects.append(self.polygons[slot])
            if self.labelled(slot):
                self.labels[slot] = self.label(slot, state.tensor)
                mobjects.append(self.labels[slot])
        return mobjects

    def pulse(self, slot: Slot) -> Animation:
        """A slot's face brightens and settles back: data landed on it without changing its kind."""
        polygon = self.polygons[slot]
        return polygon.animate(rate_func=there_and_back).set_fill(opacity=min(1.0, 2.5 * self.style.face_opacity))

    def travel(self, source: Slot, destination: Slot) -> Animation:
        """A copy of ``source``'s face, in the communication colour, gliding onto ``destination``."""
        ghost = face_polygon(self.face(source), self.view, self.style.comm_color, self.style, opacity=0.55)
        landing = face_polygon(self.face(destination), self.view, self.style.comm_color, self.style, opacity=0.15)
        ghost.set_z_index(GHOST_Z)
        landing.set_z_index(GHOST_Z)
        return Transform(ghost, landing, remover=True)

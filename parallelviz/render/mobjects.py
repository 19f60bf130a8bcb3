"""Mobjects built from layout geometry: tensor faces, billboard labels, FLOP blocks."""

from __future__ import annotations

import numpy as np
from manim import Mobject, Polygon, Prism

from parallelviz.layout import Box, Face
from parallelviz.style import Style
from parallelviz.view import View

__all__ = ["GHOST_Z", "LABEL_Z", "OVERLAY_Z", "face_polygon", "fit_to_face", "lift", "screen_xy", "billboard", "flop_prism", "ROLE_COLORS"]


GHOST_Z = 1
"""Drawing layer of data travelling between GPUs: above the faces (layer 0)."""
LABEL_Z = 2
"""Drawing layer of tensor labels: never covered by a face drawn later."""
OVERLAY_Z = 3
"""Drawing layer of captions, keys, GPU names and the cost panel."""


def ROLE_COLORS(style: Style) -> dict[str, str]:  # noqa: N802 - reads as a table
    """Fill colour of a face by its role."""
    return {
        "weight": style.weight_color,
        "activation": style.activation_color,
        "gradient": style.gradient_color,
        "partial": style.partial_color,
    }


def face_polygon(face: Face, view: View, color: str, style: Style, opacity: float | None = None) -> Polygon:
    """A filled rectangle on a tensor's face."""
    opacity = style.face_opacity if opacity is None else opacity
    polygon = Polygon(*view.to_scene(face.corners), color=color)
    polygon.set_fill(color, opacity=opacity).set_stroke(color, width=style.stroke_width, opacity=min(1.0, 3 * opacity))
    return polygon


def fit_to_face(label: Mobject, face: Face, view: View, fraction: float = 0.8) -> Mobject:
    """Shrink a flat (not yet lifted) label until it fits inside the face's on-screen outline."""
    corners = view.to_screen(face.corners)
    # The face projects to a parallelogram; its inscribed axis-aligned room is roughly the
    # smaller of the two diagonal extents, reduced by the slant of its edges.
    width = np.ptp(corners[:, 0])
    height = np.ptp(corners[:, 1])
    edges = np.diff(np.vstack([corners, corners[:1]]), axis=0)
    slant_x = min(abs(e[0]) for e in edges if np.linalg.norm(e) > 1e-9)
    slant_y = min(abs(e[1]) for e in edges if np.linalg.norm(e) > 1e-9)
    room_w, room_h = width - slant_x, height - slant_y
    factor = min(1.0, fraction * room_w / label.width, fraction * room_h / label.height)
    if factor < 1.0:
        label.scale(factor)
    return label


def lift(mobject: Mobject, view: View) -> Mobject:
    """Move a mobject laid out in 2D screen coordinates into the scene, facing the static camera.

    A point ``s`` of the screen is drawn where the scene point ``R.T @ s`` is, ``R``
    being the camera rotation (the projection is orthographic up to a far focal distance).
    """
    return mobject.apply_matrix(view.rotation.T, about_point=np.zeros(3))


def screen_xy(view: View, scene_point: np.ndarray) -> np.ndarray:
    """Screen coordinates (3-vector, z = 0) where a scene point is drawn."""
    xy = view.rotation @ np.asarray(scene_point, dtype=float)
    return np.array([xy[0], xy[1], 0.0])


def billboard(mobject: Mobject, view: View, position: np.ndarray, direction: np.ndarray | None = None, buff: float = 0.0) -> Mobject:
    """Place a flat mobject facing the camera, centred on a scene point or beside it.

    Parameters
    ----------
    direction
        Screen direction (2D or 3D with z = 0) to put the mobject on, ``buff`` away
        from the point; ``None`` centres it on the point.
    """
    anchor = screen_xy(view, position)
    if direction is None:
        mobject.move_to(anchor)
    else:
        mobject.next_to(anchor, np.array([direction[0], direction[1], 0.0]), buff=buff)
    return lift(mobject, view)


def flop_prism(box: Box, view: View, style: Style) -> Prism:
    """A FLOP block, invisible until lit; its faces coincide with its operands' faces."""
    prism = Prism(dimensions=box.size * view.scale)
    prism.move_to(view.to_scene(box.center))
    prism.set_fill(style.flop_color, opacity=0.0).set_stroke(style.flop_color, width=1.0, opacity=0.0)
    return prism


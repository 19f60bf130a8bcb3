"""Camera maths without manim: the rotation a ThreeDCamera applies, and fitting a layout into a screen region."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["rotation_matrix", "View", "fit_view"]

FRAME_WIDTH = 14.222222222222221
FRAME_HEIGHT = 8.0


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_matrix(phi: float, theta: float, gamma: float = 0.0) -> np.ndarray:
    """The matrix Manim's ``ThreeDCamera`` rotates scene points with (radians).

    Screen coordinates of a point ``p`` are ``(R @ p)[:2]`` for an orthographic view;
    ``(R @ p)[2]`` points towards the viewer.
    """
    return _rot_z(gamma) @ _rot_x(-phi) @ _rot_z(-theta - np.pi / 2)


@dataclass(frozen=True)
class View:
    """A static camera and a map from layout units to scene units.

    Parameters
    ----------
    phi, theta
        Camera angles in radians, as in ``ThreeDScene.set_camera_orientation``.
    scale
        Scene units per layout unit.
    center
        Layout point drawn at ``screen_center``.
    screen_center
        Where (in screen units, origin at the frame centre) ``center`` appears.
    """

    phi: float
    theta: float
    scale: float
    center: np.ndarray
    screen_center: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        """The camera rotation matrix."""
        return rotation_matrix(self.phi, self.theta)

    def to_scene(self, points: np.ndarray) -> np.ndarray:
        """Layout coordinates (``(..., 3)``) to scene coordinates."""
        points = np.asarray(points, dtype=float)
        shift = self.rotation.T @ np.array([*self.screen_center, 0.0])
        return (points - self.center) * self.scale + shift

    def to_screen(self, points: np.ndarray) -> np.ndarray:
        """Layout coordinates to 2D screen coordinates (orthographic)."""
        return (self.to_scene(points) @ self.rotation.T)[..., :2]

    def screen_to_scene(self, xy: np.ndarray, depth: float = 0.0) -> np.ndarray:
        """A screen point to the scene point drawn there (at ``depth`` towards the viewer)."""
        return self.rotation.T @ np.array([xy[0], xy[1], depth], dtype=float)


def fit_view(
    corners: np.ndarray,
    phi: float,
    theta: float,
    region: tuple[float, float, float, float],
) -> View:
    """The largest view that shows every corner inside a screen rectangle.

    Parameters
    ----------
    corners
        Layout points that must be visible, shape ``(n, 3)``.
    phi, theta
        Camera angles in radians.
    region
        ``(left, bottom, right, top)`` in screen units.

    Examples
    --------
    >>> import numpy as np
    >>> cube = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], float)
    >>> view = fit_view(cube, 1.0, -1.0, (-2, -1, 2, 1))
    >>> xy = view.to_screen(cube)
    >>> bool(xy[:, 1].max() <= 1 + 1e-9 and xy[:, 1].min() >= -1 - 1e-9)
    True
    """
    corners = np.asarray(corners, dtype=float)
    rotation = rotation_matrix(phi, theta)
    center = (corners.min(axis=0) + corners.max(axis=0)) / 2
    projected = ((corners - center) @ rotation.T)[:, :2]
    lo, hi = projected.min(axis=0), projected.max(axis=0)
    left, bottom, right, top = region
    scale = min((right - left) / (hi[0] - lo[0]), (top - bottom) / (hi[1] - lo[1]))
    region_center = np.array([(left + right) / 2, (bottom + top) / 2])
    screen_center = region_center - scale * (lo + hi) / 2
    return View(phi, theta, float(scale), center, screen_center)

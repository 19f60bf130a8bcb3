"""Fast monospaced text for counters: each character typeset once, words assembled from copied outlines."""

from __future__ import annotations

import numpy as np
from manim import Text, VGroup, VMobject

__all__ = ["GlyphWriter", "MONO_FONT"]

MONO_FONT = "DejaVu Sans Mono"
"""Monospaced font of the counters (Debian's fonts-dejavu-core); digits keep their place as numbers change."""

_CHARSET = "0123456789.,:/()%+-=KMGTBFLOPSsendtaflopsbytesGPU"


class GlyphWriter:
    """Writes short strings of a fixed character set without building a ``Text`` each time.

    Building a ``Text`` costs about 0.2 s (Pango, then SVG parsing) and deep-copying
    one about 20 ms; a counter that changes every step would dominate a scene's
    render time. With a monospaced font a character's place is its index times the
    advance, so glyph outlines typeset once can be copied into any word.

    Parameters
    ----------
    font_size, color
        As for ``Text``.
    charset
        Every character that may be written (spaces are always allowed).

    Examples
    --------
    ::

        writer = GlyphWriter(font_size=11, color="#1A1A1A")
        word = writer.write("294.9 KFLOP")   # a VGroup, one VMobject per visible glyph
    """

    def __init__(self, font_size: float, color: str, charset: str = _CHARSET) -> None:
        chars = "".join(dict.fromkeys(charset.replace(" ", "")))
        # The same character at both ends measures the advance exactly.
        probe = Text(f"0{chars}0", font=MONO_FONT, font_size=font_size, color=color)
        glyphs = probe.submobjects
        if len(glyphs) != len(chars) + 2:
            raise RuntimeError(f"{MONO_FONT} did not typeset one glyph per character; is fonts-dejavu-core installed?")
        self.advance = (glyphs[-1].get_center()[0] - glyphs[0].get_center()[0]) / (len(chars) + 1)
        self.height = probe.height
        self._glyphs: dict[str, VMobject] = {}
        for index, (char, glyph) in enumerate(zip(chars, glyphs[1:-1]), start=1):
            # store each outline as if its character stood in cell 0
            outline = VMobject().set_points(glyph.points - np.array([index * self.advance, 0.0, 0.0])).match_style(glyph)
            self._glyphs[char] = outline

    def write(self, text: str) -> VGroup:
        """A new mobject of ``text``, left edge of its first cell near the origin."""
        word = VGroup()
        for cell, char in enumerate(text):
            if char == " ":
                continue
            try:
                glyph = self._glyphs[char]
            except KeyError:
                raise ValueError(f"character {char!r} is not in the writer's charset") from None
            copy = VMobject().set_points(glyph.points + np.array([cell * self.advance, 0.0, 0.0])).match_style(glyph)
            word.add(copy)
        return word

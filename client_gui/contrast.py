"""Readable colours: WCAG contrast ratios, and an accent colour nudged until text on it reads.

Text needs a contrast of at least 4.5:1 with its background (WCAG 2.x, level AA). A fixed
accent such as an error red reads on a light window but not on a dark one, so accents are
darkened or lightened against the background they are drawn on.
"""

from __future__ import annotations

from PySide6.QtGui import QColor

MIN_CONTRAST = 4.5  # WCAG AA for normal text
ERROR_RED = "#c0392b"  # the hue problems are drawn in, before it is fitted to the background


def _channel(value: float) -> float:
    return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4


def luminance(color: QColor) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""
    r, g, b = (_channel(c) for c in (color.redF(), color.greenF(), color.blueF()))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: QColor, b: QColor) -> float:
    """(lighter + 0.05) / (darker + 0.05): 1 for equal colours, 21 for black on white."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable(color: str | QColor, background: QColor, minimum: float = MIN_CONTRAST) -> QColor:
    """`color`, darkened on a light background or lightened on a dark one until it reads."""
    fitted = QColor(color)
    dark_background = luminance(background) < 0.5
    for _ in range(40):
        if contrast_ratio(fitted, background) >= minimum:
            return fitted
        # Qt's lighter() desaturates once the value is at its top, so this reaches white.
        fitted = fitted.lighter(112) if dark_background else fitted.darker(112)
    return QColor("white") if dark_background else QColor("black")

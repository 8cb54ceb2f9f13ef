"""The run's loss curves and quality figure over versions (pyqtgraph), this computer's overlaid.

Curves are created once; new data only marks them dirty, and a 15 Hz timer hands the arrays
to `setData`, so a burst of versions costs one repaint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QHideEvent, QPalette, QShowEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from client_gui.contrast import readable
from core.store import MetricsRow, SampleRow

REPAINT_EVERY_MS = 1000  # 1 Hz at most: versions close several times a second, and the eye
# follows a curve's trend, not each point; nothing is redrawn while the plots are hidden
D_COLOR = "#d1495b"  # discriminator: red
G_COLOR = "#2e86de"  # generator: blue
SWD_COLOR = "#2a9d8f"  # quality: teal


def _arrays(points: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(versions, values) sorted by version, as float arrays for setData."""
    versions = sorted(points)
    return np.array(versions, dtype=float), np.array([points[v] for v in versions], dtype=float)


OWN_EVERY_S = 5.0  # this computer's points alone redraw the plots at most this often
MY_POINTS = 300  # this computer's newest units drawn as symbols


class TrainingPlotsWidget(QWidget):
    """Two plots side by side: losses per version, and the quality figure per version."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._d: dict[int, float] = {}
        self._g: dict[int, float] = {}
        self._swd: dict[int, float] = {}
        self._my_d: list[tuple[int, float]] = []  # (version, loss) of each unit computed here
        self._my_g: list[tuple[int, float]] = []
        self._dirty = False  # the run's curves changed: drawn at the next tick
        self._own_dirty = False  # only this computer's points: drawn every OWN_EVERY_S
        self._drawn_at = -OWN_EVERY_S  # monotonic seconds
        self.repaints = 0  # setData rounds so far (tests check that bursts coalesce)

        self.loss_plot = pg.PlotWidget()
        self.quality_plot = pg.PlotWidget()
        for plot, left in ((self.loss_plot, "loss"), (self.quality_plot, "SWD ×10³")):
            item = plot.getPlotItem()
            item.setLabel("bottom", "version")
            item.setLabel("left", left)
            item.showGrid(x=True, y=True, alpha=0.15)
            item.setDownsampling(auto=True, mode="peak")
            item.setClipToView(True)
            item.setMenuEnabled(False)
            plot.setMinimumHeight(160)
            # No Tab stop: there is nothing to do in a plot by keyboard (the mouse zooms).
            plot.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._d_curve = self.loss_plot.plot(pen=pg.mkPen(D_COLOR, width=2))
        self._g_curve = self.loss_plot.plot(pen=pg.mkPen(G_COLOR, width=2))
        self._my_d_points = self.loss_plot.plot(
            pen=None,
            symbol="o",
            symbolSize=6,
            symbolBrush=QColor(D_COLOR).lighter(125),
            symbolPen=None,
        )
        self._my_g_points = self.loss_plot.plot(
            pen=None,
            symbol="t",
            symbolSize=7,
            symbolBrush=QColor(G_COLOR).lighter(125),
            symbolPen=None,
        )
        self._swd_curve = self.quality_plot.plot(
            pen=pg.mkPen(SWD_COLOR, width=2), symbol="o", symbolSize=5, symbolBrush=SWD_COLOR
        )
        # Legends as text above the plots: drawn inside, they hide the newest points.
        self.loss_title = QLabel()  # its text, coloured for the palette: apply_palette
        self.quality_title = QLabel(
            "<b>Quality</b> (sliced Wasserstein distance; lower is better) &nbsp; "
            "<span>waiting for the first sample grid…</span>"
        )
        for label in (self.loss_title, self.quality_title):
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setWordWrap(True)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setVerticalSpacing(2)
        layout.addWidget(self.loss_title, 0, 0)
        layout.addWidget(self.quality_title, 0, 1)
        layout.addWidget(self.loss_plot, 1, 0)
        layout.addWidget(self.quality_plot, 1, 1)
        layout.setColumnStretch(0, 3)
        layout.setColumnStretch(1, 2)
        self.apply_palette(self.palette())

        self._timer = QTimer(self)
        self._timer.setInterval(REPAINT_EVERY_MS)
        self._timer.timeout.connect(self.repaint_if_dirty)  # runs while shown

    # Data in -------------------------------------------------------------------------------
    def add_metrics(self, rows: Iterable[MetricsRow]) -> None:
        """The run's losses (and quality figure, when stored) of newly closed versions."""
        for row in rows:
            if math.isfinite(row.d_loss):
                self._d[row.version] = row.d_loss
            if math.isfinite(row.g_loss):
                self._g[row.version] = row.g_loss
            if row.swd is not None and math.isfinite(row.swd):
                self._swd[row.version] = row.swd
            self._dirty = True

    def add_samples(self, rows: Iterable[SampleRow]) -> None:
        """The quality figure that came with each sample grid."""
        for row in rows:
            if row.swd is not None and math.isfinite(row.swd):
                self._swd[row.version] = row.swd
                self._dirty = True
        if self._swd:
            latest = self._swd[max(self._swd)]
            self.quality_title.setText(
                "<b>Quality</b> (sliced Wasserstein distance; lower is better) &nbsp; "
                f"now {latest:,.1f}"
            )

    def add_own_losses(self, version: int, d_loss: float, g_loss: float) -> None:
        """One unit this computer finished: its losses at the version it was computed for."""
        if math.isfinite(d_loss):
            self._my_d.append((version, d_loss))
        if math.isfinite(g_loss):
            self._my_g.append((version, g_loss))
        self._own_dirty = True

    def clear(self) -> None:
        for points in (self._d, self._g, self._swd, self._my_d, self._my_g):
            points.clear()
        self.quality_title.setText(
            "<b>Quality</b> (sliced Wasserstein distance; lower is better) &nbsp; "
            "waiting for the first sample grid…"
        )
        self._dirty = True

    @property
    def point_counts(self) -> dict[str, int]:
        """Points drawn per curve (for tests and the screenshot script)."""
        return {
            "d": len(self._d_curve.xData if self._d_curve.xData is not None else []),
            "g": len(self._g_curve.xData if self._g_curve.xData is not None else []),
            "swd": len(self._swd_curve.xData if self._swd_curve.xData is not None else []),
            "mine": len(self._my_d_points.xData if self._my_d_points.xData is not None else []),
        }

    # Repaint -------------------------------------------------------------------------------
    def repaint_if_dirty(self) -> None:
        """Redraw what changed: a frame costs ~10 ms per plot, so not every unit's point."""
        now = time.monotonic()
        own_due = self._own_dirty and now - self._drawn_at >= OWN_EVERY_S
        if not (self._dirty or own_due) or not self.isVisible():
            return  # a hidden plot is brought up to date when it is shown (showEvent)
        self._dirty = self._own_dirty = False
        self._drawn_at = now
        self.repaints += 1
        for curve, points in (
            (self._d_curve, self._d),
            (self._g_curve, self._g),
            (self._swd_curve, self._swd),
        ):
            curve.setData(*_arrays(points))
        for curve, pairs in ((self._my_d_points, self._my_d), (self._my_g_points, self._my_g)):
            del pairs[:-MY_POINTS]  # symbols are costly to draw: the recent ones tell the story
            x = np.array([v for v, _ in pairs], dtype=float)
            curve.setData(x, np.array([loss for _, loss in pairs], dtype=float))

    def showEvent(self, event: QShowEvent) -> None:
        self._drawn_at = -OWN_EVERY_S  # shown again: everything new is drawn at once
        self.repaint_if_dirty()
        self._timer.start()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self._timer.stop()
        super().hideEvent(event)

    def apply_palette(self, palette: QPalette) -> None:
        """Follow the application's light or dark palette (the legend's text readable on it)."""
        window = palette.color(QPalette.ColorRole.Window)
        d, g = (readable(c, window).name() for c in (D_COLOR, G_COLOR))
        self.loss_title.setText(
            f"<b>Losses per version</b> &nbsp; <span style='color:{d}'>━ discriminator</span>"
            f" &nbsp; <span style='color:{g}'>━ generator</span> &nbsp; "
            f"<span style='color:{d}'>●</span><span style='color:{g}'>▼</span>"
            " units this computer did"
        )
        background = palette.color(QPalette.ColorRole.Base)
        foreground = palette.color(QPalette.ColorRole.Text)
        for plot in (self.loss_plot, self.quality_plot):
            plot.setBackground(background)
            item = plot.getPlotItem()
            for axis in ("left", "bottom"):
                item.getAxis(axis).setPen(pg.mkPen(foreground))
                item.getAxis(axis).setTextPen(pg.mkPen(foreground))

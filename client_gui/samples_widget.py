"""The latest generated image grid, with a slider back through the grids the run kept."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from core.store import SampleRow

MAX_GRIDS = 200  # grids kept in memory for the slider (~100 KB each)


class SampleGridWidget(QWidget):
    """Shows one sample grid; follows the newest unless the slider was moved back."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grids: list[SampleRow] = []
        self._pixmap = QPixmap()
        self.image = QLabel("No generated images yet: the run draws a grid every few versions.")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setWordWrap(True)
        self.image.setMinimumSize(160, 160)
        # Ignored: the pixmap is scaled to the label, so it must never grow the label itself.
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.setAccessibleName("Sample history")
        self.slider.setToolTip("Drag back to see what the GAN drew at earlier versions")
        self.slider.valueChanged.connect(self._show)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.slider)
        layout.addWidget(self.caption)

    @property
    def shown_version(self) -> int | None:
        if not self._grids:
            return None
        return self._grids[self.slider.value()].version

    @property
    def count(self) -> int:
        return len(self._grids)

    def add_samples(self, rows: Iterable[SampleRow]) -> None:
        """New grids (any order); the view moves to the newest if it showed the newest."""
        rows = list(rows)
        if not rows:
            return
        at_newest = not self._grids or self.slider.value() == len(self._grids) - 1
        known = {g.version for g in self._grids}
        self._grids.extend(r for r in rows if r.version not in known)
        self._grids.sort(key=lambda g: g.version)
        del self._grids[:-MAX_GRIDS]
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(self._grids) - 1)
        if at_newest:
            self.slider.setValue(len(self._grids) - 1)
        self.slider.blockSignals(False)
        self.slider.setEnabled(len(self._grids) > 1)
        self._show(self.slider.value())

    def clear(self) -> None:
        self._grids.clear()
        self._pixmap = QPixmap()
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.image.setPixmap(QPixmap())
        self.image.setText("No generated images yet: the run draws a grid every few versions.")
        self.caption.setText("")

    def _show(self, index: int) -> None:
        if not 0 <= index < len(self._grids):
            return
        grid = self._grids[index]
        pixmap = QPixmap()
        pixmap.loadFromData(grid.png, "PNG")
        self._pixmap = pixmap
        newest = index == len(self._grids) - 1
        quality = "" if grid.swd is None else f" · quality {grid.swd:.1f} (lower is better)"
        where = "newest" if newest else f"{len(self._grids) - 1 - index} grids back"
        self.caption.setText(f"Version {grid.version} ({where}){quality}")
        self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap.isNull():
            return
        size = self.image.size()
        factor = min(size.width() / self._pixmap.width(), size.height() / self._pixmap.height())
        # Whole-number zoom keeps the 32 px images crisp; in between, smooth beats uneven pixels.
        whole = int(factor)
        mode = Qt.TransformationMode.SmoothTransformation
        if whole >= 2:
            factor, mode = whole, Qt.TransformationMode.FastTransformation
        scaled = self._pixmap.scaled(
            self._pixmap.size() * max(factor, 0.1), Qt.AspectRatioMode.KeepAspectRatio, mode
        )
        self.image.setPixmap(scaled)

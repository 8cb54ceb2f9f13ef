"""The tray icon: its look shows the state; its menu has Start, Pause, Snooze, Open and Quit."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from client_gui import status
from client_gui.settings import SNOOZE_CHOICES_H

NOTIFY_EVERY_S = 600.0  # at most one desktop notification per kind of failure this often
_COLORS = {
    status.OFF: "#8a8f98",  # grey ring: not donating
    status.WORKING: "#2a9d8f",  # teal: computing
    status.WAITING: "#e9c46a",  # amber: donating, nothing to do right now
    status.PAUSED: "#6c8ebf",  # blue with pause bars
    status.ERROR: "#d1495b",  # red with an exclamation mark
}


def state_icon(state: str, size: int = 64) -> QIcon:
    """A round icon whose colour and mark say the state (no image files needed)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = QColor(_COLORS.get(state, _COLORS[status.OFF]))
    margin = size * 0.08
    circle = QRectF(margin, margin, size - 2 * margin, size - 2 * margin)
    if state == status.OFF:
        painter.setPen(QPen(color, size * 0.1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
    else:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
    painter.drawEllipse(circle)
    mark = QPen(QColor("white"), size * 0.1)
    mark.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(mark)
    c = size / 2
    if state == status.PAUSED:
        painter.drawLine(
            QPointF(c - size * 0.1, c - size * 0.17), QPointF(c - size * 0.1, c + size * 0.17)
        )
        painter.drawLine(
            QPointF(c + size * 0.1, c - size * 0.17), QPointF(c + size * 0.1, c + size * 0.17)
        )
    elif state == status.ERROR:
        painter.drawLine(QPointF(c, c - size * 0.2), QPointF(c, c + size * 0.05))
        painter.drawPoint(QPointF(c, c + size * 0.2))
    elif state == status.WORKING:  # a small grid: the GAN drawing images
        cell = size * 0.12
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("white"))
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                if (dx + dy) % 2 == 0:
                    painter.drawRect(
                        QRectF(
                            c + dx * cell * 1.2 - cell / 2,
                            c + dy * cell * 1.2 - cell / 2,
                            cell,
                            cell,
                        )
                    )
    painter.end()
    return QIcon(pixmap)


class TrayIcon(QObject):
    """Wraps QSystemTrayIcon; emits what the user picked from its menu."""

    start_requested = Signal()
    pause_requested = Signal()
    snooze_requested = Signal(int)  # hours
    wake_requested = Signal()  # end the snooze now
    open_requested = Signal()
    quit_requested = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.state = status.OFF
        self._last_notified: dict[str, float] = {}
        self.menu = QMenu()
        self.start_action = QAction("Start donating", self.menu)
        self.start_action.triggered.connect(self.start_requested)
        self.pause_action = QAction("Pause", self.menu)
        self.pause_action.triggered.connect(self.pause_requested)
        self.menu.addAction(self.start_action)
        self.menu.addAction(self.pause_action)
        self.snooze_menu = self.menu.addMenu("Snooze")
        for hours in SNOOZE_CHOICES_H:
            action = self.snooze_menu.addAction(f"{hours} hour{'s' if hours > 1 else ''}")
            action.triggered.connect(lambda _=False, h=hours: self.snooze_requested.emit(h))
        self.wake_action = QAction("Wake up now", self.menu)
        self.wake_action.triggered.connect(self.wake_requested)
        self.wake_action.setVisible(False)
        self.menu.addAction(self.wake_action)
        self.menu.addSeparator()
        self.menu.addAction("Open ganfriends", self.open_requested.emit)
        self.menu.addAction("Quit", self.quit_requested.emit)
        self.icon = QSystemTrayIcon(state_icon(status.OFF))
        self.icon.setContextMenu(self.menu)
        self.icon.setToolTip("ganfriends")
        self.icon.activated.connect(self._activated)
        if self.available:
            self.icon.show()

    def show_status(
        self,
        text: str,
        state: str,
        *,
        can_start: bool,
        can_pause: bool,
        snoozed_until: float | None = None,
    ) -> None:
        """Update the icon, tooltip and which of Start/Pause/Snooze/Wake up makes sense."""
        self.snooze_menu.setEnabled(can_pause and snoozed_until is None)
        self.wake_action.setVisible(snoozed_until is not None)
        if snoozed_until is not None:
            stamp = time.strftime("%H:%M", time.localtime(snoozed_until))
            self.wake_action.setText(f"Wake up now (snoozed until {stamp})")
        if state != self.state:
            self.state = state
            self.icon.setIcon(state_icon(state))
        tip = f"ganfriends: {text}"
        if tip != self.icon.toolTip():
            self.icon.setToolTip(tip)
        self.start_action.setEnabled(can_start)
        self.pause_action.setEnabled(can_pause)

    def notify(self, kind: str, title: str, message: str, enabled: bool = True) -> bool:
        """A desktop notification, at most once per `kind` every NOTIFY_EVERY_S; True if shown."""
        now = time.monotonic()
        if not enabled or not self.available:
            return False
        if now - self._last_notified.get(kind, -NOTIFY_EVERY_S) < NOTIFY_EVERY_S:
            return False
        self._last_notified[kind] = now
        self.icon.showMessage(title, message, QSystemTrayIcon.MessageIcon.Warning, 10_000)
        return True

    def hide(self) -> None:
        self.icon.hide()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.open_requested.emit()

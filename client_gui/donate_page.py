"""Donate: Start / Pause / Finish current unit / Snooze, and the limits on donating."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTime, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from client_gui.idle import describe_idle
from client_gui.settings import SNOOZE_CHOICES_H, AppSettings
from client_gui.usage_meter import Usage
from core.throttle import MINUTES_PER_DAY, format_duration

_DAY_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DEFAULT_WINDOW = (18 * 60, 8 * 60)  # evenings and nights: 18:00 to 08:00 the next morning


class DonatePage(QWidget):
    """The controls; `settings_edited` carries changed AppSettings fields as a dict."""

    start_clicked = Signal()
    pause_clicked = Signal()
    finish_clicked = Signal()
    snooze_clicked = Signal(int)  # hours
    snooze_cancelled = Signal()
    settings_edited = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = AppSettings()
        self._connected = False
        self._donating = False
        layout = QVBoxLayout(self)
        layout.addWidget(self._controls_box())
        layout.addWidget(self._limits_box())
        layout.addWidget(self._schedule_box())
        self.login_check = QCheckBox("Start &ganfriends when I log in (it opens in the tray)")
        self.login_check.toggled.connect(lambda on: self._edit(start_at_login=on))
        self.notify_check = QCheckBox("Show a desktop &notification when something goes wrong")
        self.notify_check.toggled.connect(lambda on: self._edit(notifications=on))
        layout.addWidget(self.login_check)
        layout.addWidget(self.notify_check)
        layout.addStretch(1)
        self.show_state(connected=False, donating=False, busy=False)

    # Building ------------------------------------------------------------------------------
    def _controls_box(self) -> QGroupBox:
        box = QGroupBox("Donate")
        self.start_button = QPushButton("&Start")
        self.start_button.setToolTip("Lend this computer to the run (cancels a snooze)")
        self.start_button.clicked.connect(self.start_clicked)
        self.pause_button = QPushButton("&Pause")
        self.pause_button.setToolTip("Stop at once: the unit in hand goes back to the run")
        self.pause_button.clicked.connect(self.pause_clicked)
        self.finish_button = QPushButton("&Finish current unit")
        self.finish_button.setToolTip("Finish the unit being computed, then pause")
        self.finish_button.clicked.connect(self.finish_clicked)
        row = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.finish_button):
            button.setMinimumHeight(34)
            row.addWidget(button)
        row.addStretch(1)
        snooze_row = QHBoxLayout()
        snooze_row.addWidget(QLabel("Snooze:"))
        self.snooze_buttons = []
        for hours in SNOOZE_CHOICES_H:
            button = QPushButton(f"{hours} h")
            button.setAccessibleName(f"Snooze for {hours} hours")
            button.clicked.connect(lambda _=False, h=hours: self.snooze_clicked.emit(h))
            self.snooze_buttons.append(button)
            snooze_row.addWidget(button)
        self.cancel_snooze_button = QPushButton("&Wake up now")
        self.cancel_snooze_button.clicked.connect(self.snooze_cancelled)
        snooze_row.addWidget(self.cancel_snooze_button)
        self.snooze_label = QLabel("")
        self.snooze_label.setAccessibleName("Snooze countdown")
        snooze_row.addWidget(self.snooze_label, 1)
        layout = QVBoxLayout(box)
        layout.addLayout(row)
        layout.addLayout(snooze_row)
        return box

    def _limits_box(self) -> QGroupBox:
        box = QGroupBox("Limits")
        self.cap_slider = QSlider(Qt.Orientation.Horizontal)
        self.cap_slider.setRange(1, 10)  # tenths of the time
        self.cap_slider.setPageStep(1)
        self.cap_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.cap_slider.setAccessibleName("Usage cap")
        self.cap_slider.setMinimumWidth(240)
        self.cap_slider.setMaximumWidth(360)
        self.cap_slider.valueChanged.connect(self._cap_moved)
        self.cap_label = QLabel("")
        cap_title = QLabel("&Usage cap:")
        cap_title.setBuddy(self.cap_slider)
        self.idle_check = QCheckBox("Only while I am &away from this computer, after")
        self.idle_check.toggled.connect(lambda on: self._edit(idle_only=on))
        self.idle_minutes = QSpinBox()
        self.idle_minutes.setRange(1, 120)
        self.idle_minutes.setSuffix(" min without keyboard or mouse")
        self.idle_minutes.setAccessibleName("Minutes without input that count as away")
        self.idle_minutes.valueChanged.connect(lambda m: self._edit(idle_after_s=float(m * 60)))
        self.idle_readout = QLabel("Idle time: measuring…")
        self.idle_readout.setAccessibleName("Idle time readout")
        cap_row = QHBoxLayout()
        cap_row.addWidget(cap_title)
        cap_row.addWidget(self.cap_slider)
        cap_row.addWidget(self.cap_label, 1)
        idle_row = QHBoxLayout()
        idle_row.addWidget(self.idle_check)
        idle_row.addWidget(self.idle_minutes)
        idle_row.addStretch(1)
        self.usage_readout = QLabel("Measured use: shown once donating has run half a minute")
        self.usage_readout.setAccessibleName("Measured CPU use")
        self.usage_readout.setWordWrap(True)
        layout = QVBoxLayout(box)
        layout.addLayout(cap_row)
        layout.addWidget(self.usage_readout)
        layout.addLayout(idle_row)
        layout.addWidget(self.idle_readout)
        return box

    def _schedule_box(self) -> QGroupBox:
        box = QGroupBox("Weekly schedule")
        self.schedule_check = QCheckBox(
            "Only at these &times (an end before the start runs past midnight):"
        )
        self.schedule_check.toggled.connect(self._schedule_edited)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        self.day_checks: list[QCheckBox] = []
        self.day_starts: list[QTimeEdit] = []
        self.day_ends: list[QTimeEdit] = []
        for day, name in enumerate(_DAY_LONG):
            check = QCheckBox(name)
            start = QTimeEdit()
            end = QTimeEdit()
            for edit, label in ((start, "from"), (end, "until")):
                edit.setDisplayFormat("HH:mm")
                edit.setAccessibleName(f"{name} {label}")
                edit.timeChanged.connect(self._schedule_edited)
            check.toggled.connect(self._schedule_edited)
            # Two days a row in reading order (Monday, Tuesday / Wednesday, Thursday / …), so
            # Tab goes through the week in the order it reads.
            row, column = day // 2, day % 2 * 5
            grid.addWidget(check, row, column)
            grid.addWidget(start, row, column + 1)
            grid.addWidget(QLabel("until"), row, column + 2)
            grid.addWidget(end, row, column + 3)
            self.day_checks.append(check)
            self.day_starts.append(start)
            self.day_ends.append(end)
        grid.setColumnMinimumWidth(4, 40)
        grid.setColumnStretch(9, 1)
        layout = QVBoxLayout(box)
        layout.addWidget(self.schedule_check)
        layout.addLayout(grid)
        return box

    # Showing -------------------------------------------------------------------------------
    def show_settings(self, settings: AppSettings) -> None:
        """Reflect saved settings in the widgets (without echoing edits back)."""
        self._settings = settings
        widgets = [
            self.cap_slider,
            self.idle_check,
            self.idle_minutes,
            self.schedule_check,
            self.login_check,
            self.notify_check,
            *self.day_checks,
            *self.day_starts,
            *self.day_ends,
        ]
        for widget in widgets:
            widget.blockSignals(True)
        self.cap_slider.setValue(round(settings.duty_cycle * 10))
        self.idle_check.setChecked(settings.idle_only)
        self.idle_minutes.setValue(max(1, round(settings.idle_after_s / 60)))
        self.login_check.setChecked(settings.start_at_login)
        self.notify_check.setChecked(settings.notifications)
        self.schedule_check.setChecked(settings.schedule is not None)
        windows = {day: (start, end) for day, start, end in settings.schedule or ()}
        for day in range(7):
            start, end = windows.get(day, _DEFAULT_WINDOW)
            self.day_checks[day].setChecked(day in windows or settings.schedule is None)
            self.day_starts[day].setTime(_to_time(start))
            self.day_ends[day].setTime(_to_time(end % MINUTES_PER_DAY))
        for widget in widgets:
            widget.blockSignals(False)
        self._cap_label()
        self._enable_schedule()
        self.idle_minutes.setEnabled(settings.idle_only)
        self.show_snooze()

    def show_state(self, *, connected: bool, donating: bool, busy: bool) -> None:
        """Enable what makes sense: Start when not donating, Pause/Finish while donating."""
        self._connected = connected
        self._donating = donating
        self.start_button.setEnabled(connected and not donating)
        self.pause_button.setEnabled(connected and (donating or busy))
        self.finish_button.setEnabled(connected and donating and busy)
        snooze_ok = connected and donating
        for button, hours in zip(self.snooze_buttons, SNOOZE_CHOICES_H, strict=True):
            button.setEnabled(snooze_ok)
            button.setToolTip(
                f"Pause the donation for {hours} h; it resumes by itself"
                if snooze_ok
                else "Nothing to snooze: this computer is not donating now (Start first)"
            )

    def show_snooze(self) -> None:
        """The countdown (called every second by the window)."""
        until = self._settings.snooze_until
        left = None if until is None else until - time.time()
        if left is None or left <= 0:
            self.snooze_label.setText("")
            self.cancel_snooze_button.setEnabled(False)
            return
        stamp = time.strftime("%H:%M", time.localtime(until))
        self.snooze_label.setText(f"Snoozed: {format_duration(left)} left (until {stamp})")
        self.cancel_snooze_button.setEnabled(True)

    def show_usage(self, usage: Usage | None, duty: float) -> None:
        """The measured CPU of everything donating runs, next to the cap (every few seconds)."""
        if usage is None:
            text = "Measured use: shown once donating has run half a minute"
        else:
            cap = self._settings.duty_cycle
            text = (
                f"Measured use over the last {usage.seconds:.0f} s: {usage.total:.0%} of one core "
                f"for this app, its worker and the local coordinator together "
                f"(the worker alone {usage.worker:.0%})"
            )
            if cap < 1.0:
                text += (
                    f"; target {cap:.0%} of the worker's cores, so the worker computes "
                    f"{duty:.0%} of the time"
                )
        if text != self.usage_readout.text():
            self.usage_readout.setText(text)

    def show_idle(self, seconds: float | None, method: str) -> None:
        self.idle_readout.setText(describe_idle(seconds, method))

    # Editing -------------------------------------------------------------------------------
    def _edit(self, **changes: object) -> None:
        if "idle_only" in changes:
            self.idle_minutes.setEnabled(bool(changes["idle_only"]))
        self.settings_edited.emit(changes)

    def _cap_moved(self, tenths: int) -> None:
        self._cap_label(tenths)
        self._edit(duty_cycle=tenths / 10)

    def _cap_label(self, tenths: int | None = None) -> None:
        value = self.cap_slider.value() if tenths is None else tenths
        if value >= 10:
            self.cap_label.setText("no cap: compute all the time")
        else:
            self.cap_label.setText(f"compute at most {value * 10}% of the time")

    def _schedule_edited(self, *_: object) -> None:
        self._enable_schedule()
        if not self.schedule_check.isChecked():
            self._edit(schedule=None)
            return
        windows = []
        for day in range(7):
            if not self.day_checks[day].isChecked():
                continue
            start = _to_minutes(self.day_starts[day].time())
            end = _to_minutes(self.day_ends[day].time())
            if start == end:  # the same time twice: the whole day
                start, end = 0, MINUTES_PER_DAY
            windows.append((day, start, end))
        self._edit(schedule=tuple(windows))

    def _enable_schedule(self) -> None:
        on = self.schedule_check.isChecked()
        for day in range(7):
            self.day_checks[day].setEnabled(on)
            checked = on and self.day_checks[day].isChecked()
            self.day_starts[day].setEnabled(checked)
            self.day_ends[day].setEnabled(checked)


def _to_time(minutes: int) -> QTime:
    return QTime(minutes // 60, minutes % 60)


def _to_minutes(value: QTime) -> int:
    return value.hour() * 60 + value.minute()

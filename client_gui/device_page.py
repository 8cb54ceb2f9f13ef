"""Device: GPUs by name and memory, Apple MPS, the CPU with its cores; CPU threads; your name."""

from __future__ import annotations

from itertools import pairwise

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from client_gui.device_probe import DeviceChoice, auto_device, cpu_cores
from client_gui.settings import AppSettings


class DevicePage(QWidget):
    """Pick the device and the CPU threads; emits `settings_edited` with the changed fields."""

    settings_edited = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        intro = QLabel(
            "<h2>What to lend</h2><p>A graphics card (GPU) computes much faster than the "
            "processor. Changes apply at once: a unit being computed is handed back first.</p>"
        )
        intro.setWordWrap(True)
        self._devices_box = QGroupBox("&Device")
        self._devices_layout = QVBoxLayout(self._devices_box)
        self._group = QButtonGroup(self)
        self._group.idToggled.connect(self._device_toggled)
        self._buttons: dict[str, QRadioButton] = {}
        self._specs: list[str] = []
        self._detecting = QLabel("Looking for graphics cards…")
        self._devices_layout.addWidget(self._detecting)
        self.threads = QSpinBox()
        self.threads.setRange(0, cpu_cores())
        self.threads.setSpecialValueText("Automatic (a fair share of the cores)")
        self.threads.setAccessibleName("CPU threads per unit")
        self.threads.valueChanged.connect(self._threads_changed)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("this computer's name")
        self.name_edit.setAccessibleName("Your name on the leaderboard")
        self.name_edit.setMaxLength(64)
        self.name_edit.setMaximumWidth(360)
        self.threads.setMaximumWidth(360)
        self.name_edit.editingFinished.connect(self._name_changed)
        form = QFormLayout()
        threads_label = QLabel("CPU &threads per unit:")
        threads_label.setBuddy(self.threads)
        name_label = QLabel("Your &name on the leaderboard:")
        name_label.setBuddy(self.name_edit)
        form.addRow(threads_label, self.threads)
        form.addRow(name_label, self.name_edit)
        hint = QLabel(
            "Fewer threads leave more of the processor to you; the worker also runs at low "
            "priority, so your own programs always come first."
        )
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self._devices_box)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addStretch(1)
        self._settings = AppSettings()

    def show_settings(self, settings: AppSettings) -> None:
        self._settings = settings
        self.threads.blockSignals(True)
        self.threads.setValue(settings.threads or 0)
        self.threads.blockSignals(False)
        if not self.name_edit.hasFocus():
            self.name_edit.setText(settings.name)
        self._check(settings.device)

    def show_devices(self, devices: list[DeviceChoice]) -> None:
        """List the detected devices; unusable ones are disabled with their reason."""
        self._detecting.hide()
        cores = next((d.cores for d in devices if d.cores is not None), None)
        if cores:
            self.threads.blockSignals(True)
            self.threads.setMaximum(cores)
            self.threads.setValue(self._settings.threads or 0)
            self.threads.blockSignals(False)
        for button in self._buttons.values():
            self._group.removeButton(button)
            button.deleteLater()
        for label in self._devices_box.findChildren(QLabel, "reason"):
            label.deleteLater()
        self._buttons.clear()
        self._specs = []
        auto_spec, note = auto_device(devices)
        auto_name = next((d.label() for d in devices if d.spec == auto_spec), auto_spec)
        self._add_choice("auto", f"Automatic: the best one here (now: {auto_name})", True, note)
        for device in devices:
            self._add_choice(device.spec, device.label(), device.usable, device.reason or None)
        self._check(self._settings.device)
        # The choices arrive after the fields below them: Tab reaches them first all the same.
        order = [*self._buttons.values(), self.threads, self.name_edit]
        for first, second in pairwise(order):
            QWidget.setTabOrder(first, second)

    def _add_choice(self, spec: str, text: str, usable: bool, reason: str | None) -> None:
        button = QRadioButton(text)
        button.setEnabled(usable)
        self._group.addButton(button, len(self._specs))
        self._specs.append(spec)
        self._buttons[spec] = button
        self._devices_layout.addWidget(button)
        if reason:
            label = QLabel(("Cannot be used: " if not usable else "") + reason)
            label.setObjectName("reason")
            label.setWordWrap(True)
            label.setIndent(24)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._devices_layout.addWidget(label)

    def _check(self, spec: str) -> None:
        button = self._buttons.get(spec) or self._buttons.get("auto")
        if button is not None and not button.isChecked():
            self._group.blockSignals(True)
            button.setChecked(True)
            self._group.blockSignals(False)

    def _device_toggled(self, button_id: int, checked: bool) -> None:
        if checked and self._specs[button_id] != self._settings.device:
            self.settings_edited.emit({"device": self._specs[button_id]})

    def _threads_changed(self, value: int) -> None:
        threads = value or None
        if threads != self._settings.threads:
            self.settings_edited.emit({"threads": threads})

    def _name_changed(self) -> None:
        name = self.name_edit.text().strip()
        if name != self._settings.name:
            self.settings_edited.emit({"name": name})

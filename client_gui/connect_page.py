"""Connect: paste an invite code or a database URL, or try the whole thing locally."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from client_gui.connection import RunTarget
from client_gui.contrast import ERROR_RED, readable

INTRO = (
    "<h2>Join a training run</h2>"
    "<p>Friends, a class or a lab train one shared GAN together: each computer computes small "
    "pieces of the work while nobody needs it. Paste the invite code you were sent by the "
    "run's owner, or try everything on this computer first.</p>"
)


EMPTY_CODE = (
    "Paste the invite code you were sent (gf1-…) or a database URL first, then press Connect."
)


class ConnectPage(QWidget):
    """Asks for an invite code or URL; shows checking, the failure, or the run joined."""

    connect_requested = Signal(str)
    local_requested = Signal()
    disconnect_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        self.code_edit = QLineEdit()
        self.code_edit.setPlaceholderText("gf1-…  or  sqlite:///path/run.db  or  postgresql://…")
        self.code_edit.setAccessibleName("Invite code or database URL")
        self.code_edit.setClearButtonEnabled(True)
        self.code_edit.returnPressed.connect(self._connect)
        code_label = QLabel("&Invite code or database URL:")
        code_label.setBuddy(self.code_edit)
        form = QFormLayout()
        form.addRow(code_label, self.code_edit)
        self.connect_button = QPushButton("&Connect")
        self.connect_button.setDefault(True)
        self.connect_button.clicked.connect(self._connect)
        self.local_button = QPushButton("Try it &locally")
        self.local_button.setToolTip(
            "Start a small demo run on this computer: a coordinator in the background and this "
            "app as its volunteer, so you can see everything work before joining a real run"
        )
        self.local_button.clicked.connect(self.local_requested)
        # The control that had the keyboard focus when checking began: disabling it moves the
        # focus away, so it goes back there once the answer is in.
        self._focus_back: QWidget | None = None
        self.disconnect_button = QPushButton("&Disconnect")
        self.disconnect_button.clicked.connect(self.disconnect_requested)
        self.disconnect_button.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.local_button)
        buttons.addStretch(1)
        buttons.addWidget(self.disconnect_button)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setAccessibleName("Connection message")
        self.message.setMinimumHeight(48)
        self.message.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addSpacing(8)
        layout.addWidget(self.message)
        layout.addStretch(1)

    def set_code(self, text: str) -> None:
        self.code_edit.setText(text)

    def show_phase(self, phase: str) -> None:
        busy = phase in ("checking", "starting_local")
        if busy and self.code_edit.isEnabled():  # disabling it moves the keyboard focus away
            had = (self.code_edit, self.connect_button, self.local_button)
            self._focus_back = next((w for w in had if w.hasFocus()), None)
        self.connect_button.setEnabled(not busy)
        self.local_button.setEnabled(not busy)
        self.code_edit.setEnabled(not busy)
        if phase == "checking":
            self._say("Checking the connection…", problem=False)
        elif phase == "starting_local":
            self._say(
                "Starting the local demo: creating its run the first time takes a few seconds…",
                problem=False,
            )
        elif phase == "none":
            self._say("", problem=False)
            self.disconnect_button.setVisible(False)

    def show_problem(self, message: str) -> None:
        self.disconnect_button.setVisible(False)
        self._say(message, problem=True)
        back, self._focus_back = self._focus_back, None
        if back is self.local_button:  # back where the volunteer was, to try again
            self.local_button.setEnabled(True)
            self.local_button.setFocus()
        elif back is not None:  # in the address field, to correct the code
            self.code_edit.setEnabled(True)
            self.code_edit.setFocus()
            self.code_edit.selectAll()

    def show_connected(self, target: RunTarget) -> None:
        paused = (
            " Its owner has paused it for now: you can press Start anyway, and computing "
            "begins when they resume it."
            if target.paused
            else ""
        )
        where = "the local demo run on this computer" if target.local else target.shown
        self._say(
            f"Connected to the run “{target.run_name}” ({where}).{paused} "
            "Next: press Start on the Donate page (Ctrl+3); the Watch page (Ctrl+4) shows how "
            "the GAN learns.",
            problem=False,
        )
        self.disconnect_button.setVisible(True)
        back, self._focus_back = self._focus_back, None
        if back is not None:  # enabled again by now (the phase changed first)
            back.setFocus()

    def _connect(self) -> None:
        text = self.code_edit.text().strip()
        if not text:  # Enter in the empty field: a hint, never a disconnect
            self._say(EMPTY_CODE, problem=True)
            return
        self.connect_requested.emit(text)

    def _say(self, text: str, *, problem: bool) -> None:
        self.message.setText(text)
        self.message.setProperty("problem", problem)
        self._colour_message()

    def _colour_message(self) -> None:
        """A problem in bold red, fitted to this palette's background so it reads (4.5:1)."""
        problem = bool(self.message.property("problem"))
        palette = self.palette()
        if problem:
            red = readable(ERROR_RED, palette.color(QPalette.ColorRole.Window))
            palette.setColor(QPalette.ColorRole.WindowText, red)
        self.message.setPalette(palette)
        font = self.message.font()
        font.setBold(problem)
        self.message.setFont(font)

    def changeEvent(self, event: QEvent) -> None:
        """A light or dark desktop theme chosen while the app runs: fit the colour again."""
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._colour_message()
        super().changeEvent(event)

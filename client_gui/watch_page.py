"""Watch: the run's status, its curves and images, your contribution, the leaderboard, the log."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from client_gui.event_log import EventLogWidget
from client_gui.leaderboard import LeaderboardModel
from client_gui.plots import TrainingPlotsWidget
from client_gui.run_state import (
    Contribution,
    LeaderboardRow,
    RunSnapshot,
    RunSummary,
    format_duration_s,
)
from client_gui.samples_widget import SampleGridWidget


class WatchPage(QWidget):
    """Shows what the run and this computer are doing; fed by the session's signals."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_line = QLabel("Not connected to a run yet.")
        self.run_line.setAccessibleName("Run status")
        self.run_line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plots = TrainingPlotsWidget()
        self.samples = SampleGridWidget()
        samples_box = QGroupBox("What the GAN draws now")
        QVBoxLayout(samples_box).addWidget(self.samples)

        self.units_label = QLabel("—")
        self.images_label = QLabel("—")
        self.compute_label = QLabel("—")
        self.share_label = QLabel("—")
        mine = QGroupBox("Your contribution")
        form = QFormLayout(mine)
        form.addRow("Units computed:", self.units_label)
        form.addRow("Images:", self.images_label)
        form.addRow("Compute time:", self.compute_label)
        self.share_title = QLabel("Share of the last hour:")
        form.addRow(self.share_title, self.share_label)
        # Verification: confirmed by another volunteer, or why the results do not count.
        self.verified_label = QLabel("")
        self.verified_label.setWordWrap(True)
        self.verified_label.hide()
        form.addRow(self.verified_label)
        self.leaderboard = LeaderboardModel()
        self.leaderboard_view = QTableView()
        self.leaderboard_view.setModel(self.leaderboard)
        self.leaderboard_view.verticalHeader().hide()
        self.leaderboard_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.leaderboard_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.leaderboard_view.setAccessibleName("Leaderboard")
        header = self.leaderboard_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        people = QWidget()
        people_layout = QVBoxLayout(people)
        people_layout.setContentsMargins(4, 4, 4, 4)
        people_layout.addWidget(mine)
        board_label = QLabel("Leaderboard")
        people_layout.addWidget(board_label)
        people_layout.addWidget(self.leaderboard_view, 1)
        self.log = EventLogWidget()
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(people, "Contribution && leaderboard")
        self.side_tabs.addTab(self.log, "Event log")

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(samples_box)
        bottom.addWidget(self.side_tabs)
        bottom.setStretchFactor(0, 1)
        bottom.setStretchFactor(1, 1)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(self.plots)
        main.addWidget(bottom)
        main.setStretchFactor(0, 2)
        main.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.run_line)
        layout.addWidget(main, 1)

    def add_snapshot(self, snapshot: RunSnapshot) -> None:
        self.plots.add_metrics(snapshot.metrics)
        self.plots.add_samples(snapshot.samples)
        self.samples.add_samples(snapshot.samples)

    def add_own_unit(self, version: int | None, metrics: dict[str, float] | None) -> None:
        if version is None or not metrics:
            return
        self.plots.add_own_losses(
            version, metrics.get("d_loss", float("nan")), metrics.get("g_loss", float("nan"))
        )

    def show_figures(
        self, summary: RunSummary, mine: Contribution, board: Sequence[LeaderboardRow]
    ) -> None:
        parts = [f"Run “{summary.name}”", f"version {summary.version:,}"]
        if summary.status == "paused":
            parts.append("paused by its owner")
        if summary.active_volunteers is not None:
            count = summary.active_volunteers
            parts.append(f"{count} active volunteer{'s' if count != 1 else ''}")
        if summary.versions_per_hour is not None:
            parts.append(f"{summary.versions_per_hour:,.0f} versions per hour")
        if summary.unit_kind:
            parts.append(f"units compute {summary.unit_kind}")
        if summary.waiting:
            parts.append(
                f"{summary.waiting} computer{'s' if summary.waiting != 1 else ''} wait for work "
                f"each version (a version has {summary.units_per_version} units; the run's owner "
                "can raise that)"
            )
        if summary.problem:
            parts.append(f"problem: {summary.problem}")
        self.run_line.setText(" · ".join(parts))
        self.units_label.setText(f"{mine.units:,}")
        self.images_label.setText(f"{mine.images:,}")
        self.compute_label.setText(format_duration_s(mine.compute_s))
        self.share_label.setText(
            "—" if mine.share_last_hour is None else f"{mine.share_last_hour:.0%} of the images"
        )
        self.leaderboard.set_rows(board)
        self.verified_label.setVisible(mine.standing is not None)
        self.verified_label.setText(mine.standing or "")
        self.verified_label.setAccessibleName(mine.standing or "")
        self.verified_label.setTextFormat(Qt.TextFormat.PlainText)
        self.verified_label.setStyleSheet("font-weight: bold;" if mine.refused else "")

    def clear(self) -> None:
        self.plots.clear()
        self.samples.clear()
        self.leaderboard.set_rows([])
        self.run_line.setText("Not connected to a run yet.")
        for label in (self.units_label, self.images_label, self.compute_label, self.share_label):
            label.setText("—")
        self.verified_label.hide()

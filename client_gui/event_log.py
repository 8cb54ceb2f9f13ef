"""The event log: this computer's worker, the run, and the app, with a filter and copy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from client_gui.table_model import Index, ListTableModel
from core.store import EventRow

if TYPE_CHECKING:  # importing core.worker loads torch: the GUI process does not need it
    from core.events import WorkerEvent

KEEP_S = 24 * 3600  # entries older than a day are dropped
MAX_ENTRIES = 20_000  # and the oldest beyond this many (a day of a busy run's lines)
SOURCES = ("This computer", "Run", "App")
SHOW_CHOICES = ("Everything", *SOURCES, "Problems only")
# Run event kinds that mean something went wrong somewhere.
_RUN_PROBLEMS = frozenset({"mismatch", "parked", "expired", "empty_version", "rejected"})
_COLUMNS = ("Time", "From", "What happened")


@dataclass(frozen=True)
class LogEntry:
    """One line of the log."""

    at: float  # seconds since the epoch
    source: str  # one of SOURCES
    message: str
    problem: bool  # shown under "Problems only"

    def as_text(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        return f"{stamp}\t{self.source}\t{self.message}"


def entry_from_worker(event: WorkerEvent) -> LogEntry:
    problem = event.kind in ("error", "unit_refused") or event.state == "error"
    return LogEntry(event.at, "This computer", event.message, problem)


def entry_from_run(event: EventRow) -> LogEntry:
    return LogEntry(event.at, "Run", event.message, event.kind in _RUN_PROBLEMS)


def published_entry(events: list[EventRow]) -> LogEntry:
    """The run's published versions as one line: one version's own message, or a count."""
    if len(events) == 1:
        return entry_from_run(events[0])
    first, last = events[0], events[-1]
    span = (
        ""
        if first.version is None or last.version is None
        else f" {first.version:,}–{last.version:,}"
    )
    minutes = (last.at - first.at) / 60
    during = f"in {minutes:.0f} min" if minutes >= 1.5 else "in the last minute"
    return LogEntry(last.at, "Run", f"{len(events):,} versions{span} published {during}", False)


class EventLogModel(ListTableModel):
    """Log entries, oldest first: a day of them, at most MAX_ENTRIES."""

    def __init__(self) -> None:
        super().__init__(_COLUMNS)
        self._rows: list[LogEntry] = []

    def add(self, entries: Iterable[LogEntry]) -> None:
        new = list(entries)
        if not new:
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(new) - 1)
        self._rows.extend(new)
        self.endInsertRows()
        too_old = time.time() - KEEP_S
        excess = max(
            len(self._rows) - MAX_ENTRIES,
            next((i for i, e in enumerate(self._rows) if e.at >= too_old), len(self._rows)),
        )
        if excess > 0:
            self.beginRemoveRows(QModelIndex(), 0, excess - 1)
            del self._rows[:excess]
            self.endRemoveRows()

    def entry(self, row: int) -> LogEntry:
        return self._rows[row]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if index.column() == 0:
                return time.strftime("%H:%M:%S", time.localtime(entry.at))
            return entry.source if index.column() == 1 else entry.message
        if role == Qt.ItemDataRole.ToolTipRole:
            return entry.as_text().replace("\t", "  ")
        return None


class EventFilterModel(QSortFilterProxyModel):
    """Entries matching the filter text (any column) and the chosen source or problems."""

    def __init__(self, source: EventLogModel) -> None:
        super().__init__()
        self.setSourceModel(source)
        self._log = source
        self._text = ""
        self._show = SHOW_CHOICES[0]

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def set_show(self, choice: str) -> None:
        self._refilter(lambda: setattr(self, "_show", choice))

    def _refilter(self, change: Callable[[], None]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+: invalidateRowsFilter is deprecated
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:
        entry = self._log.entry(row)
        if self._show == "Problems only" and not entry.problem:
            return False
        if self._show in SOURCES and entry.source != self._show:
            return False
        return not self._text or self._text in entry.as_text().lower()


class EventLogWidget(QWidget):
    """Filter box, source choice, Copy button and the table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = EventLogModel()
        self.filtered = EventFilterModel(self.model)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter the log…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Filter the event log")
        self.filter_edit.textChanged.connect(self.filtered.set_text)
        self.show_choice = QComboBox()
        self.show_choice.addItems(SHOW_CHOICES)
        self.show_choice.setAccessibleName("Which events to show")
        self.show_choice.currentTextChanged.connect(self.filtered.set_show)
        self.copy_button = QPushButton("Cop&y")
        self.copy_button.setToolTip(
            "Copy the selected lines, or every shown line, to the clipboard"
        )
        self.copy_button.clicked.connect(self.copy)
        self.table = QTableView()
        self.table.setAccessibleName("Event log")
        self.table.setModel(self.filtered)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        # Widths from the font, not ResizeToContents: that measures every row on each insert.
        metrics = self.table.fontMetrics()
        pad = 4 * metrics.averageCharWidth()
        for column, widest in ((0, "88:88:88"), (1, max(SOURCES, key=metrics.horizontalAdvance))):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, metrics.horizontalAdvance(widest) + pad)
        header.setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(metrics.height() + 6)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        QShortcut(QKeySequence.StandardKey.Copy, self.table, self.copy)
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.show_choice)
        top.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)

    def add(self, entries: Iterable[LogEntry]) -> None:
        """Append entries; the view follows the newest when it was at the bottom."""
        bar = self.table.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        self.model.add(entries)
        if at_bottom:
            self.table.scrollToBottom()

    def shown_text(self) -> str:
        """The selected lines, or every line the filter shows, as tab-separated text."""
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        if not rows:
            rows = list(range(self.filtered.rowCount()))
        lines = []
        for row in rows:
            source_row = self.filtered.mapToSource(self.filtered.index(row, 0)).row()
            lines.append(self.model.entry(source_row).as_text())
        return "\n".join(lines)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.shown_text())

"""The run's leaderboard as a Qt table model (this volunteer's row in bold)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont

from client_gui.run_state import LeaderboardRow, format_duration_s
from client_gui.table_model import Index, ListTableModel

_COLUMNS = ("#", "Volunteer", "Units", "Confirmed", "Images", "Compute time")


class LeaderboardModel(ListTableModel):
    """Rows of `LeaderboardRow`, most images first."""

    def __init__(self) -> None:
        super().__init__(_COLUMNS)
        self._rows: list[LeaderboardRow] = []

    def set_rows(self, rows: Sequence[LeaderboardRow]) -> None:
        if list(rows) == self._rows:
            return
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_at(self, row: int) -> LeaderboardRow:
        return self._rows[row]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            name = f"{row.name} (you)" if row.is_me else row.name
            values = (
                index.row() + 1,
                name,
                f"{row.units:,}",
                f"{row.verified:,}",  # results another volunteer's computation confirmed
                f"{row.images:,}",
                format_duration_s(row.compute_s),
            )
            return values[column]
        if role == Qt.ItemDataRole.FontRole and row.is_me:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

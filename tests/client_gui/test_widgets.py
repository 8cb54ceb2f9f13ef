"""Plots repaint from a timer, the sample grid follows the newest, the log filters and copies."""

from __future__ import annotations

import math
import time

from PySide6.QtGui import QGuiApplication

from client_gui.event_log import KEEP_S, MAX_ENTRIES, EventLogWidget, LogEntry, published_entry
from client_gui.plots import TrainingPlotsWidget
from client_gui.samples_widget import SampleGridWidget
from core.quality import sample_grid_png
from core.store import EventRow, MetricsRow, SampleRow

NOW = time.time()


def metrics(version: int, swd: float | None = None) -> MetricsRow:
    return MetricsRow(version, 1.0 + version, 0.5, 0.5, 0.5, 12, 3, 0, 0.1, swd, float(version))


def test_a_burst_of_versions_costs_one_repaint(qtbot):
    plots = TrainingPlotsWidget()
    qtbot.addWidget(plots)
    before = plots.repaints
    for version in range(50):
        plots.add_metrics([metrics(version, swd=100.0 if version % 10 == 0 else None)])
    plots.add_own_losses(49, 0.9, 1.1)
    plots.add_own_losses(50, math.nan, 1.2)  # a NaN loss is left out, not drawn as a gap
    qtbot.wait(700)
    assert plots.repaints == before  # hidden: nothing is drawn
    plots.show()
    qtbot.waitUntil(lambda: plots.repaints == before + 1, timeout=2000)
    qtbot.wait(700)
    assert plots.repaints == before + 1
    assert plots.point_counts == {"d": 50, "g": 50, "swd": 5, "mine": 1}


def test_plots_follow_the_palette(qtbot):
    plots = TrainingPlotsWidget()
    qtbot.addWidget(plots)
    palette = plots.palette()
    palette.setColor(palette.ColorRole.Base, "#101010")
    plots.apply_palette(palette)
    assert plots.loss_plot.backgroundBrush().color().name() == "#101010"


def grid_png(seed: int) -> bytes:
    import torch

    return sample_grid_png(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed)))


def test_sample_grid_follows_the_newest_unless_moved_back(qtbot):
    widget = SampleGridWidget()
    qtbot.addWidget(widget)
    widget.resize(400, 400)
    widget.add_samples([SampleRow(v, grid_png(v), 500.0 - v, 0.0) for v in (5, 10)])
    assert widget.shown_version == 10 and widget.caption.text().startswith("Version 10 (newest)")
    widget.add_samples([SampleRow(15, grid_png(15), None, 0.0)])
    assert widget.shown_version == 15
    widget.slider.setValue(0)  # the volunteer looks back
    assert widget.shown_version == 5 and "2 grids back" in widget.caption.text()
    widget.add_samples([SampleRow(20, grid_png(20), None, 0.0)])
    assert widget.shown_version == 5  # a new grid does not yank the view away
    assert widget.count == 4 and not widget.image.pixmap().isNull()


def test_log_filters_by_text_source_and_problems_and_copies(qtbot):
    log = EventLogWidget()
    qtbot.addWidget(log)
    log.add(
        [
            LogEntry(NOW, "This computer", "Finished unit 3 in 1.0 s", False),
            LogEntry(NOW + 1, "Run", "unit 4 (copy 0): lease of worker 2 expired; re-issued", True),
            LogEntry(NOW + 2, "App", "Snoozed for 1 h", False),
        ]
    )
    assert log.filtered.rowCount() == 3
    log.filter_edit.setText("UNIT")
    assert log.filtered.rowCount() == 2
    log.filter_edit.clear()
    log.show_choice.setCurrentText("Problems only")
    assert log.filtered.rowCount() == 1
    log.show_choice.setCurrentText("App")
    assert log.filtered.rowCount() == 1
    log.copy_button.click()
    assert QGuiApplication.clipboard().text().endswith("App\tSnoozed for 1 h")
    log.show_choice.setCurrentText("Everything")
    log.table.selectRow(0)
    log.copy()
    assert QGuiApplication.clipboard().text().endswith("Finished unit 3 in 1.0 s")


def test_log_keeps_the_newest_entries(qtbot):
    log = EventLogWidget()
    qtbot.addWidget(log)
    log.add(LogEntry(NOW + i, "Run", f"event {i}", False) for i in range(MAX_ENTRIES + 10))
    assert log.model.rowCount() == MAX_ENTRIES
    assert log.model.entry(0).message == "event 10"


def test_log_keeps_a_day(qtbot):
    log = EventLogWidget()
    qtbot.addWidget(log)
    day_ago = time.time() - KEEP_S
    log.add(LogEntry(day_ago + hour * 3600, "Run", f"{hour} h", False) for hour in range(-2, 24))
    assert [log.model.entry(i).message for i in (0, 1)] == ["1 h", "2 h"]
    assert log.model.rowCount() == 23


def test_published_versions_are_one_line() -> None:
    def published(version: int, at: float) -> EventRow:
        return EventRow(version, at, "published", None, version, f"version {version} published")

    assert published_entry([published(7, NOW)]).message == "version 7 published"
    line = published_entry([published(v, NOW + v) for v in range(8, 128)])
    assert (line.at, line.source, line.problem) == (NOW + 127, "Run", False)
    assert line.message == "120 versions 8–127 published in 2 min"

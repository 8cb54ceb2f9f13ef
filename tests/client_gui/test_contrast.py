"""Every label reads in light and dark palettes: contrast of at least 4.5:1, measured."""

from __future__ import annotations

import re

import pytest
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel

from client_gui.contrast import MIN_CONTRAST, contrast_ratio, readable
from client_gui.screenshots import _dark_palette

SPAN_COLOUR = re.compile(r"color:\s*(#[0-9a-fA-F]{6})")


def light_palette() -> QPalette:
    palette = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, "#efefef"),
        (QPalette.ColorRole.WindowText, "#1a1a1a"),
        (QPalette.ColorRole.Base, "#ffffff"),
        (QPalette.ColorRole.Text, "#1a1a1a"),
    ):
        palette.setColor(role, QColor(colour))
    return palette


def test_contrast_ratio_and_fitting():
    assert contrast_ratio(QColor("black"), QColor("white")) == pytest.approx(21.0)
    assert contrast_ratio(QColor("#777777"), QColor("#777777")) == pytest.approx(1.0)
    dark = QColor("#2b2d30")
    assert contrast_ratio(QColor("#c0392b"), dark) < MIN_CONTRAST  # the red used to be drawn
    for background in (dark, QColor("#ffffff"), QColor("#efefef"), QColor("#000000")):
        assert contrast_ratio(readable("#c0392b", background), background) >= MIN_CONTRAST


@pytest.mark.parametrize("palette", [light_palette, _dark_palette], ids=["light", "dark"])
def test_every_label_reads_in_both_palettes(qtbot, make_window, palette):
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = app.palette()
    app.setPalette(palette())
    try:
        window = make_window()
        window.show()
        window.connect_page.show_problem("Cannot reach the run's server at example.org:5432.")
        qtbot.wait(50)
        checked = []
        for label in window.findChildren(QLabel):
            if not label.text() or not label.isEnabled():
                continue
            background = label.palette().color(QPalette.ColorRole.Window)
            colours = [label.palette().color(label.foregroundRole())]
            colours += [QColor(c) for c in SPAN_COLOUR.findall(label.text())]
            for colour in colours:
                ratio = contrast_ratio(colour, background)
                assert ratio >= MIN_CONTRAST, (label.text()[:60], colour.name(), ratio)
            checked.append(label)
        assert window.connect_page.message in checked
        assert window.watch_page.plots.loss_title in checked
        assert len(checked) > 20
    finally:
        app.setPalette(before)

"""Device and Donate pages: what they show and what they change."""

from __future__ import annotations

from PySide6.QtCore import QTime

from client_gui.autostart import is_start_at_login
from client_gui.device_probe import GB, DeviceChoice, auto_device
from client_gui.settings import load_settings

DEVICES = [
    DeviceChoice("cpu", "Test CPU", None, 8, True, ""),
    DeviceChoice("cuda:0", "Big GPU", 24 * GB, None, True, ""),
    DeviceChoice(
        "cuda:1", "Small GPU", int(1.5 * GB), None, False, "1.5 GB is below the 2 GB needed"
    ),
]


def test_automatic_picks_the_biggest_usable_gpu_and_names_the_skipped_one():
    spec, note = auto_device(DEVICES)
    assert spec == "cuda:0"
    assert note == "GPU cuda:1 skipped: 1.5 GB is below the 2 GB needed"
    assert auto_device(DEVICES[:1]) == ("cpu", None)
    assert DEVICES[1].label() == "Big GPU (cuda:0), 24 GB"
    assert DEVICES[0].label() == "CPU: Test CPU, 8 cores"


def test_device_page_lists_devices_with_reasons_and_saves_the_choice(qtbot, make_window):
    window = make_window(find_devices=lambda: DEVICES)
    page = window.device_page
    qtbot.waitUntil(lambda: len(page._buttons) == 4, timeout=5000)
    assert page._buttons["auto"].isChecked()
    assert "Big GPU" in page._buttons["auto"].text()
    assert not page._buttons["cuda:1"].isEnabled()
    reasons = [label.text() for label in page.findChildren(type(window.status_label), "reason")]
    assert "Cannot be used: 1.5 GB is below the 2 GB needed" in reasons
    page._buttons["cpu"].click()
    assert load_settings().device == "cpu"
    page.threads.setValue(3)
    page.name_edit.setText("Ada")
    page.name_edit.editingFinished.emit()
    settings = load_settings()
    assert (settings.threads, settings.name) == (3, "Ada")
    assert window.session.worker_name == "Ada"


def test_donate_page_limits_schedule_and_login_are_saved(qtbot, make_window, private_folders):
    window = make_window()
    page = window.donate_page
    page.cap_slider.setValue(3)
    assert page.cap_label.text() == "compute at most 30% of the time"
    page.schedule_check.setChecked(True)
    for day in range(7):
        page.day_checks[day].setChecked(day == 4)  # Fridays only
    page.day_starts[4].setTime(QTime(22, 0))
    page.day_ends[4].setTime(QTime(2, 30))  # past midnight, into Saturday
    page.login_check.setChecked(True)
    settings = load_settings()
    assert settings.duty_cycle == 0.3
    assert settings.schedule == ((4, 22 * 60, 2 * 60 + 30),)
    assert settings.start_at_login and is_start_at_login()
    entry = private_folders / "xdg" / "autostart" / "ganfriends.desktop"
    assert "--minimized" in entry.read_text()
    page.login_check.setChecked(False)
    assert not entry.exists()


def test_idle_readout_is_live(qtbot, make_window):
    window = make_window()
    qtbot.waitUntil(
        lambda: window.donate_page.idle_readout.text() == "Idle for 5 s (measured with test clock)",
        timeout=5000,
    )


def test_no_gpu_is_said_plainly_with_what_to_install(qtbot, make_window):
    from client_gui.device_probe import NO_GPU, no_gpu_reason

    linux = {"system": "linux", "cuda_build": "13.0"}
    no_driver = no_gpu_reason(**linux, nvidia_smi=False, cuda_available=False)
    assert no_driver is not None and no_driver.startswith("no NVIDIA driver found")
    old_driver = no_gpu_reason(**linux, nvidia_smi=True, cuda_available=False)
    assert old_driver is not None and "update it to 580 or newer" in old_driver
    windows = no_gpu_reason(system="win32", nvidia_smi=True, cuda_build=None, cuda_available=False)
    assert windows is not None and "CPU build of PyTorch" in windows
    assert all("docs/install.md" in r for r in (no_driver, old_driver, windows))
    assert no_gpu_reason(**linux, nvidia_smi=True, cuda_available=True) is None

    devices = [DEVICES[0], DeviceChoice(NO_GPU, "No usable GPU", None, None, False, no_driver)]
    assert auto_device(devices) == ("cpu", None)  # not on every CPU computer's status line
    window = make_window(find_devices=lambda: devices)
    page = window.device_page
    qtbot.waitUntil(lambda: NO_GPU in page._buttons, timeout=5000)
    assert page._buttons[NO_GPU].text() == "No usable GPU"
    assert not page._buttons[NO_GPU].isEnabled()
    reasons = [label.text() for label in page.findChildren(type(window.status_label), "reason")]
    assert f"Cannot be used: {no_driver}" in reasons

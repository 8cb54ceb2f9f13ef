"""Runs inside the new environment (never imported by the bootstrapper): one line per check."""

import json
import os
import sys
import traceback

VARIANT = sys.argv[1] if len(sys.argv) > 1 else "cpu"


def check_torch() -> str:
    import torch

    x = torch.ones(2, 3) @ torch.ones(3, 2)  # (2, 2), every entry 3
    assert float(x.sum()) == 12.0, f"matmul gave {x.tolist()}"
    if VARIANT.startswith("cu"):
        if not torch.cuda.is_available():
            raise RuntimeError("PyTorch cannot use the NVIDIA GPU; start with --variant cpu")
        y = torch.ones(4, device="cuda") * 2
        assert float(y.sum()) == 8.0
    if VARIANT == "mps":
        if not torch.backends.mps.is_available():
            raise RuntimeError("PyTorch cannot use the Apple GPU; start with --variant cpu")
        assert float((torch.ones(4, device="mps") * 2).sum().cpu()) == 8.0
    return f"torch {torch.__version__}"


def check_torchvision() -> str:
    import torch
    import torchvision
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2], f"nms kept {keep.tolist()}"
    return f"torchvision {torchvision.__version__}"


def check_qt() -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6 import QtCore
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    plot = pg.PlotWidget()
    plot.plot([0, 1, 2], [0, 1, 4])
    plot.resize(200, 100)
    plot.show()
    app.processEvents()
    plot.close()
    return f"Qt {QtCore.qVersion()} ({QGuiApplication.platformName()}), pyqtgraph {pg.__version__}"


def check_database() -> str:
    import psycopg2
    import sqlalchemy

    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
    return f"SQLAlchemy {sqlalchemy.__version__}, psycopg2 {psycopg2.__version__.split()[0]}"


def check_ganfriends() -> str:
    import client_gui
    import core

    return f"core at {os.path.dirname(core.__file__)}, client_gui imported ({client_gui.__name__})"


CHECKS = [
    ("torch", check_torch),
    ("torchvision", check_torchvision),
    ("qt", check_qt),
    ("database", check_database),
    ("ganfriends", check_ganfriends),
]

failed = False
for name, check in CHECKS:
    try:
        result = {"check": name, "ok": True, "detail": check()}
    except BaseException as exc:  # every failure is reported, then the script exits 1
        failed = True
        detail = f"{type(exc).__name__}: {exc}"
        result = {"check": name, "ok": False, "detail": detail, "trace": traceback.format_exc()}
    print(json.dumps(result), flush=True)
sys.exit(1 if failed else 0)

"""Load the C++ runtime before usearch, so libraries loaded after it (ONNX Runtime) do not crash.

usearch's wheel carries its own static copy of libstdc++ and exports that copy's GNU "unique" symbols,
which bind process-wide even though Python loads extensions privately. A libstdc++ loaded later, such as
the one ONNX Runtime links to, then resolves parts of itself to usearch's copy and crashes on import
(``import usearch.index; import onnxruntime`` is a segmentation fault on Linux with usearch 2.26 and
onnxruntime 1.28-1.30). Loading the system libstdc++ first, globally, makes every library share it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def load_cxx_runtime_first() -> None:
    """Load the system libstdc++ globally if this is Linux and it is there; elsewhere nothing to do."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("stdc++")
    if name is None:
        return
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:  # not loadable here: usearch still works, only a later ONNX Runtime import may not
        return

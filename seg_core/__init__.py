"""Seg Studio's engine: projects, images, masks, import/export, training and inference."""

import os

# TensorFlow's C++ info lines mean nothing to a user; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seg_core.errors import SegError  # noqa: E402

__all__ = ["SegError"]
__version__ = "0.1.0"

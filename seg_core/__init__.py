"""Seg Studio's engine: projects, images, masks, import/export, training and inference."""

from seg_core.errors import SegError

__all__ = ["SegError"]
__version__ = "0.1.0"

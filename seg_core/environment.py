"""Maskloop's environment variables, all under one prefix (MASKLOOP_*).

The names the product read before it was called Maskloop still work, so a shell script or service file written for
them keeps its meaning; each one logs a warning naming its replacement, once per process.
"""

from __future__ import annotations

import logging
import os

PREFIX = "MASKLOOP_"
WORKSPACE, MAX_PIXELS, DEBUG, FAULT, FUZZ, REQUIRE_SIGNIN, SHARED_DATA = (
    "WORKSPACE", "MAX_PIXELS", "DEBUG", "FAULT", "FUZZ", "REQUIRE_SIGNIN", "SHARED_DATA")
FORMER_NAMES = {WORKSPACE: "SEG_WORKSPACE", MAX_PIXELS: "SEG_MAX_PIXELS", DEBUG: "SEGSTUDIO_DEBUG",
                FAULT: "SEGSTUDIO_FAULT", FUZZ: "SEGSTUDIO_FUZZ", REQUIRE_SIGNIN: "SEGSTUDIO_REQUIRE_SIGNIN",
                SHARED_DATA: "SEG_SHARED_DATA"}
_warned: set[str] = set()
log = logging.getLogger(__name__)


def name(key: str) -> str:
    """The variable's full name, e.g. name(WORKSPACE) == "MASKLOOP_WORKSPACE"."""
    return PREFIX + key


def get(key: str, default: str | None = None) -> str | None:
    """The variable's value; its former name's when only that is set; else `default`."""
    value = os.environ.get(name(key))
    if value is not None:
        return value
    former = FORMER_NAMES.get(key)
    if former is None or former not in os.environ:
        return default
    if former not in _warned:
        _warned.add(former)
        log.warning("%s is read as %s; it will stop working in a later version: rename it.", former, name(key))
    return os.environ[former]

"""What this machine's CPU has, from the flags Linux lists in /proc/cpuinfo: the rules that choose a run's training
step (config.xla_is_faster_here) and its precision (ml/precision.py) read them here. No TensorFlow."""

from __future__ import annotations

import functools

CPUINFO = "/proc/cpuinfo"
# Units that compute in bfloat16: AVX-512's BF16 instructions, or Intel's AMX tiles. Without either, TensorFlow
# emulates bfloat16 with float32 arithmetic and conversions.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=8)
def cpu_flags(cpuinfo: str = CPUINFO) -> frozenset[str]:
    """The first processor's flags; none where they cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.split(":", 1)[1].split()) if ":" in line else frozenset()


def cpu_has_avx512(cpuinfo: str = CPUINFO) -> bool:
    """Whether this machine's CPU has AVX-512 units; False where its features cannot be read."""
    return "avx512f" in cpu_flags(cpuinfo)


def cpu_has_bf16(cpuinfo: str = CPUINFO) -> bool:
    """Whether this machine's CPU computes in bfloat16 (BF16_FLAGS); False where its features cannot be read."""
    return not cpu_flags(cpuinfo).isdisjoint(BF16_FLAGS)


def flags_line(cpuinfo: str = CPUINFO) -> str:
    """The flags the rules read, for a benchmark's header: e.g. "CPU flags: avx2 yes, avx512f no, ..."."""
    flags = cpu_flags(cpuinfo)
    if not flags:
        return "CPU flags: not readable here"
    return "CPU flags: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx2", "avx512f", *BF16_FLAGS))

"""The number format a run computes in: what "auto" picks on a CPU, the words for each choice, and whether a saved
model would compute in bfloat16 on a CPU that only emulates it. No TensorFlow here (the Train page and the CLI
read it)."""

from __future__ import annotations

from seg_core.errors import TrainingError
from seg_core.ml.cpu import CPUINFO, cpu_has_bf16

# Each precision as a person reads it (the Train page, a run's line, `maskloop runs`).
WORDS = {"auto": "Automatic", "float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
# --precision's values: the short names, and each config name as it is stored.
CLI_NAMES = {"auto": "auto", "float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16",
             "mixed_float16": "mixed_float16"}
# What "auto" does, as --precision's help and its refusal say it.
AUTO_RULE = "bfloat16 where the CPU has bf16 units (AVX512_BF16 or AMX), float32 on other CPUs, mixed float16 on a GPU"
# What the Train page offers: a page's run trains on this machine's CPU unless it has a GPU, which "auto" covers.
PAGE_CHOICES = ("auto", "float32", "mixed_bfloat16")


def cpu_precision(cpuinfo: str = CPUINFO) -> str:
    """What "auto" trains in on a CPU. Where the CPU has bfloat16 units (cpu.BF16_FLAGS), mixed bfloat16: weights,
    the loss and the output layer in float32 as before, the convolutions in half the bytes on those units.
    bench/train_speed.py on such a CPU: the plain U-Net trains clearly more images per CPU-second; the pretrained
    U-Net, whose depthwise convolutions gain less, still more, at the same quality in the same time
    (bench/time_to_quality.py; docs/performance.md). Elsewhere float32: TensorFlow emulates bfloat16 there, no
    faster and less exact."""
    return "mixed_bfloat16" if cpu_has_bf16(cpuinfo) else "float32"


def auto_note(cpuinfo: str = CPUINFO) -> str:
    """What "auto" does on this machine, in plain words."""
    if cpu_has_bf16(cpuinfo):
        found = "bf16 units found on this CPU: bfloat16"
    else:
        found = "this CPU has no bf16 units: float32"
    return f"Automatic: {found} (on a GPU, mixed float16)."


def from_cli(text: str) -> str:
    """--precision's value as a config's precision, or a sentence saying what it may be."""
    if text not in CLI_NAMES:
        raise TrainingError(f"--precision '{text}' is not a precision: use float32, bfloat16 or auto "
                            f"(auto: {AUTO_RULE}).")
    return CLI_NAMES[text]


def computes_in_bfloat16(model) -> bool:
    """Whether any layer of this Keras model (nested ones too) computes in bfloat16: a mixed_bfloat16 run's model."""
    stack = list(getattr(model, "layers", ()))
    while stack:
        layer = stack.pop()
        if getattr(getattr(layer, "dtype_policy", None), "compute_dtype", None) == "bfloat16":
            return True
        stack.extend(getattr(layer, "layers", ()))
    return False


def float32_needed(model, cpuinfo: str = CPUINFO) -> bool:
    """Whether predicting with this model should use a float32 copy: it computes in bfloat16 and this CPU only
    emulates bfloat16 (slower than float32, and less exact)."""
    return computes_in_bfloat16(model) and not cpu_has_bf16(cpuinfo)

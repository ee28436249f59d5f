"""Predict a mask with a model exported by Maskloop: python predict_example.py IMAGE OUT.png

Needs numpy, Pillow and the model's runtime only (model.json, next to this file, names it and says how to install it).
OUT.png is a palette PNG at IMAGE's size: each pixel's value is a class id, its colour that class's colour.
Every step below is the one Maskloop takes (model.json's "preprocessing" and "postprocessing" say it in words).
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent


# runtime: keras
def load_keras(path: Path):
    import keras

    model = keras.saving.load_model(path, compile=False)
    return lambda x: np.asarray(model(x, training=False))


# runtime: savedmodel
def load_savedmodel(path: Path):
    import tensorflow as tf

    model = tf.saved_model.load(str(path))
    return lambda x: model.serve(tf.constant(x)).numpy()


# runtime: onnx
def load_onnx(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


# runtime: tflite
def load_tflite(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:   # no LiteRT package: TensorFlow's copy of the same interpreter
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])
    return run


# end of runtimes
def read_image(path: str) -> np.ndarray:
    """uint8 HxW (grey) or HxWx3 (RGB), upright; 16-bit scaled by the range it uses, transparency laid on white."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            a = np.asarray(im, np.float64)
            lo = min(0.0, float(a.min()))
            scale = 255.0 / (a.max() - lo) if a.max() > 255 or lo < 0 else 1.0
            return np.clip((a - lo) * scale, 0, 255).round().astype(np.uint8)
        if im.mode in ("L", "1", "LA", "La"):
            return np.asarray(im.convert("L"))
        if im.mode in ("P", "RGBA", "RGBa", "PA"):
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im.convert("RGBA"))
        return np.asarray(im.convert("RGB"))


def content_box(h: int, w: int, size: int, resize: str) -> tuple[int, int, int, int]:
    """Where the image lies in the square input: (top, left, height, width)."""
    if resize == "squash":
        return 0, 0, size, size
    scale = min(size / h, size / w)
    ch, cw = min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))
    return (size - ch) // 2, (size - cw) // 2, ch, cw


def prepare(image: np.ndarray, size: int, channels: int, resize: str) -> np.ndarray:
    """The model's input, (1, size, size, channels) float32 in 0..1."""
    if channels == 3 and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif channels == 1 and image.ndim == 3:
        image = image.mean(axis=2).round().astype(np.uint8)
    top, left, ch, cw = content_box(*image.shape[:2], size, resize)
    im = Image.fromarray(image)
    if im.size != (cw, ch):
        im = im.resize((cw, ch), Image.BILINEAR)
    x = np.asarray(im, np.uint8)
    if (ch, cw) != (size, size):   # letterbox: the rest of the square is the image's mirror image
        pad = ((top, size - ch - top), (left, size - cw - left)) + ((0, 0),) * (x.ndim - 2)
        x = np.pad(x, pad, mode="symmetric")
    x = x.reshape(size, size, channels).astype(np.float32) / 255.0
    return np.ascontiguousarray(x[None])


def resize_bilinear(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """HxWxC float32 to h x w: bilinear with half-pixel centres, in float32 and in the order tf.image.resize works."""
    def axis(n_in: int, n_out: int):
        x = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(n_in / n_out) - np.float32(0.5)
        lo = np.floor(x)
        return (np.clip(lo, 0, n_in - 1).astype(int), np.clip(np.ceil(x), 0, n_in - 1).astype(int),
                (x - lo).astype(np.float32))
    y0, y1, fy = axis(a.shape[0], h)
    x0, x1, fx = axis(a.shape[1], w)
    fx = fx[None, :, None]
    top = a[y0][:, x0] + (a[y0][:, x1] - a[y0][:, x0]) * fx
    bottom = a[y1][:, x0] + (a[y1][:, x1] - a[y1][:, x0]) * fx
    return top + (bottom - top) * fy[:, None, None]


def class_ids(probs: np.ndarray, h: int, w: int, card: dict) -> np.ndarray:
    """The model's (size, size, K) answer -> class ids at the image's own h x w."""
    size, resize, post = card["input"]["size"][0], card["preprocessing"]["resize"], card["postprocessing"]
    top, left, ch, cw = content_box(h, w, size, resize)
    probs = resize_bilinear(probs[top:top + ch, left:left + cw], h, w)
    if post["rule"] == "threshold":   # binary: one sigmoid channel, the object's probability
        return (probs[..., -1] >= post["threshold"]).astype(np.uint8)
    return probs.argmax(axis=-1).astype(np.uint8)


def palette(card: dict) -> list[int]:
    pal = [0] * 768
    for c in card["classes"]:
        pal[3 * c["id"]: 3 * c["id"] + 3] = [int(c["color"][i:i + 2], 16) for i in (1, 3, 5)]
    ignore = card["ignore"]
    pal[3 * ignore["id"]: 3 * ignore["id"] + 3] = [int(ignore["color"][i:i + 2], 16) for i in (1, 3, 5)]
    return pal


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    card = json.loads((HERE / "model.json").read_text())
    try:
        model = globals()["load_" + card["format"]](HERE / card["model_file"])
    except ImportError as exc:
        print(f"This model needs {card['runtime']['package']} ({exc}); install it with: "
              f"{card['runtime']['install']}", file=sys.stderr)
        return 2
    image = read_image(argv[0])
    size, channels = card["input"]["size"][0], card["input"]["channels"]
    probs = np.asarray(model(prepare(image, size, channels, card["preprocessing"]["resize"])), np.float32)[0]
    ids = class_ids(probs, image.shape[0], image.shape[1], card)
    mask = Image.fromarray(ids, "P")
    mask.putpalette(palette(card))
    mask.save(argv[1])
    names = {c["id"]: c["name"] for c in card["classes"]}
    found = ", ".join(f"{names[i]} {n / ids.size:.1%}" for i, n in zip(*np.unique(ids, return_counts=True)))
    print(f"wrote {argv[1]} ({image.shape[1]}x{image.shape[0]}): {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The tutorial-style reference every benchmark compares against (keras-io / zhixuhao U-Net)."""

from __future__ import annotations


def reference_unet(keras, size: int, channels: int, filters: int, depth: int = 4):
    """Two 3x3 convs per level, max-pool, transposed conv up, no batch norm, sigmoid output."""
    from keras import layers

    inputs = keras.Input((size, size, channels))
    x, skips = inputs, []
    for i in range(depth):
        x = layers.Conv2D(filters * 2 ** i, 3, activation="relu", padding="same")(x)
        x = layers.Conv2D(filters * 2 ** i, 3, activation="relu", padding="same")(x)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(filters * 2 ** depth, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(filters * 2 ** depth, 3, activation="relu", padding="same")(x)
    for i in reversed(range(depth)):
        x = layers.Conv2DTranspose(filters * 2 ** i, 2, strides=2, padding="same")(x)
        x = layers.concatenate([x, skips[i]])
        x = layers.Conv2D(filters * 2 ** i, 3, activation="relu", padding="same")(x)
        x = layers.Conv2D(filters * 2 ** i, 3, activation="relu", padding="same")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, out)

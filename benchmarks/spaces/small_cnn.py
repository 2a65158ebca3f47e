"""A small plain CNN of five parameters (issue 22's second space for B2 and the pruning analysis).

Conv blocks (3×3 convolution, ReLU, 2×2 max-pooling while the image is at least 4 pixels on a
side), an optional dense layer, dropout, Adam. Nothing else: no augmentation, no schedule, no
backbone, so what the analysis measures is the search, not the flagship space's extras.

Try it:  automl search benchmarks/spaces/small_cnn.py --trials 20
"""

import keras
from keras import layers

OBJECTIVE = ("val_accuracy", "maximize")
DATA = "digits"
EPOCHS = 27


def build(hp, info):
    blocks = hp.Int("blocks", 1, 3)
    filters = hp.Int("filters", 8, 64, step=8)
    dense_units = hp.Choice("dense_units", [0, 64, 128])
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")

    inputs = keras.Input(shape=info.input_shape)
    x = inputs
    side = min(info.input_shape[:2])
    for block in range(blocks):
        x = layers.Conv2D(filters * 2**block, 3, padding="same", activation="relu")(x)
        if side >= 4:
            x = layers.MaxPooling2D(2)(x)
            side //= 2
    x = layers.Flatten()(x)
    if dense_units:
        x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(info.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model

"""A Keras Tuner hypermodel, unchanged: the "Getting started" example of Keras Tuner's guide.

Nothing here knows about automl: `hp` is Keras Tuner's vocabulary, and a `HyperModel` subclass
with `build(hp)` and `fit(hp, model, ...)` is found by `automl` as it is. The output layer has
10 units, as in the guide (digits, MNIST, CIFAR-10).

Try it:  automl check spaces/keras_tuner_style.py
"""

import keras
import keras_tuner
from keras import layers


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential()
        model.add(layers.Rescaling(1.0 / 255))
        model.add(layers.Flatten())
        # Tune the number of layers.
        for i in range(hp.Int("num_layers", 1, 3)):
            model.add(
                layers.Dense(
                    # Tune number of units separately.
                    units=hp.Int(f"units_{i}", min_value=32, max_value=256, step=32),
                    activation=hp.Choice("activation", ["relu", "tanh"]),
                )
            )
        if hp.Boolean("dropout"):
            model.add(layers.Dropout(rate=0.25))
        model.add(layers.Dense(10, activation="softmax"))
        learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, **kwargs)


hypermodel = MyHyperModel()

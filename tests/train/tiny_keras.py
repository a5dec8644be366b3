"""Make a small float Keras classifier and its data, for tests/host/test_quantize.py.

Run with the train venv's python (TensorFlow): `python tiny_keras.py OUT_DIR`. Writes
model.keras (a 1-D CNN over 32 steps x 3 channels, 4 classes, trained a few epochs on
seeded synthetic signals: sines of class-dependent frequency plus noise), calib.npz and
heldout.npz (array x: float windows; y: labels). Deterministic for a given TensorFlow.
"""

import sys
from pathlib import Path

import numpy as np


def data(rng, n):
    y = rng.integers(0, 4, n)
    t = np.arange(32)[None, :, None]
    freq = (1 + y)[:, None, None] * 0.12
    phase = rng.uniform(0, 6.28, (n, 1, 3))
    x = np.sin(freq * t + phase) + rng.normal(0, 0.2, (n, 32, 3))
    return x.astype(np.float32), y


def main(out: Path) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x, y = data(rng, 600)
    xh, yh = data(rng, 120)
    model = tf.keras.Sequential([
        tf.keras.Input((32, 3)),
        tf.keras.layers.Conv1D(8, 5, activation="relu"),
        tf.keras.layers.MaxPooling1D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(4, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    np.savez(out / "calib.npz", x=x[:200], y=y[:200])
    np.savez(out / "heldout.npz", x=xh, y=yh)
    acc = float((model.predict(xh, verbose=0).argmax(1) == yh).mean())
    print(f"float accuracy {acc:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

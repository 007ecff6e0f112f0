"""Train the small digits CNN and write what `edgeopt export` needs, offline.

Writes DIR/model.keras, DIR/calib.npz (x) and DIR/test.npz (x, y) from scikit-learn's
bundled digits. The README's first command runs this, then `edgeopt export` and
`edgeopt inspect` on the result. (The recipe pipeline will replace it.)

    python tools/digits_demo.py demo/ [--epochs 15]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    import keras
    import numpy as np

    from edgeopt.datasets import load_digits_splits
    from edgeopt.models import digits_cnn

    keras.utils.set_random_seed(0)
    data = load_digits_splits()
    model = digits_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=args.epochs,
              batch_size=32, verbose=2)
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.keras")
    np.savez(args.out / "calib.npz", x=data.x_train[:200])
    np.savez(args.out / "test.npz", x=data.x_test, y=data.y_test)
    print(f"test accuracy {accuracy:.4f}; wrote {args.out}/model.keras, calib.npz, test.npz")


if __name__ == "__main__":
    main()

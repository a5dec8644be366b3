"""Retrain every example model (activity, energy, anomaly) reproducibly: `make models`.

Each model's train.py runs in its own process (a fresh TensorFlow, so seeds and op
determinism apply to each alone) and writes its artefacts beside itself. Exits non-zero if
any fails. Pass model names to train only those: python models/train_all.py activity.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("activity", "energy", "anomaly")


def main(argv: list[str]) -> int:
    names = argv or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"train_all: unknown model(s) {unknown}; choose from {list(MODELS)}")
        return 2
    failed = []
    for name in names:
        print(f"== {name}: python models/{name}/train.py", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(HERE / name / "train.py")])
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"train_all: failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

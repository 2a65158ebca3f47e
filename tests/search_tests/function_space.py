"""A plain-Python space for the function executor: no TensorFlow, so scheduler tests are fast.

`build(hp)` yields one objective value per epoch. Environment variables steer it:
AUTOML_TEST_LOG (append one JSON line per trial: pid, slot environment, start and end times),
AUTOML_TEST_DELAY (seconds per epoch), AUTOML_TEST_FAIL ("build" raises in every trial but
not in the recording run, "always" raises everywhere, "nan" yields NaN at epoch 2),
AUTOML_TEST_HANG_ONCE (a path: the first trial to create it hangs at epoch 2),
AUTOML_TEST_PREFLIGHT_LOG (append one line per build of the preflight). A trial resumed
mid-way gets `start_epoch`, the epochs it already did.
"""

import json
import math
import os
import time

OBJECTIVE = ("score", "maximize")
EPOCHS = 9


def build(hp, start_epoch=0):
    x = hp.Float("x", -5.0, 5.0, default=0.0)
    kind = hp.Choice("kind", ["a", "b"], default="a")
    with hp.conditional_scope("kind", ["b"]):
        if kind == "b":
            x += hp.Int("shift", 0, 3, default=1) * 0.1
    preflights = os.environ.get("AUTOML_TEST_PREFLIGHT_LOG")
    if preflights and os.environ.get("AUTOML_PREFLIGHT"):
        with open(preflights, "a", encoding="utf-8") as handle:
            handle.write(f"{kind}\n")
    fail = os.environ.get("AUTOML_TEST_FAIL", "")
    if fail == "always" or (fail == "build" and not os.environ.get("AUTOML_PREFLIGHT")):
        raise RuntimeError("this space always fails")
    delay = float(os.environ.get("AUTOML_TEST_DELAY", "0"))
    entry = {
        "pid": os.getpid(),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": os.environ.get("TF_NUM_INTRAOP_THREADS"),
        "start": time.time(),
    }
    hang_once = os.environ.get("AUTOML_TEST_HANG_ONCE")  # the first trial hangs at epoch 2
    hang = bool(hang_once) and not os.environ.get("AUTOML_PREFLIGHT")
    if hang:
        try:
            open(hang_once, "x").close()
        except FileExistsError:
            hang = False
    try:
        for epoch in range(start_epoch + 1, 1000):  # a resumed trial skips what it did
            time.sleep(delay)
            if hang and epoch == 2:
                time.sleep(3600)
            if fail == "nan" and epoch == 2:
                yield math.nan
            yield -((x - 1.0) ** 2) + 0.01 * epoch
    finally:
        log = os.environ.get("AUTOML_TEST_LOG")
        if log and not os.environ.get("AUTOML_PREFLIGHT"):
            entry["end"] = time.time()
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

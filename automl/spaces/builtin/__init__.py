"""Space files shipped inside the package (loaded by path, never imported as modules).

`cnn.py` is the flagship space: `automl search` without a SPACE, and `automl.ImageClassifier`,
search it. In the repository it is a link to `spaces/cnn.py`, the readable example (one copy:
a built wheel holds the file itself). It stays a real file in `spaces/` because `automl serve`
refuses links that lead out of `--spaces`.
"""

from __future__ import annotations

from pathlib import Path

FLAGSHIP = Path(__file__).resolve().parent / "cnn.py"

"""Converters from the official raw datasets to the faceparse layout (docs/datasets.md, "Real datasets").

* :func:`convert_celebamask` — CelebAMask-HQ (``celebamask13`` / ``celebamask19``), 512², CelebA splits.
* :func:`convert_lapa` — LaPa at native resolution, landmarks kept.
* :func:`convert_helen` — Helen (SmithCVPR2013), soft maps → argmax; ``drop_hair`` for Helen-D.

Each is resumable, parallel, writes atomically and returns a :class:`ConvertReport`.
"""

from faceparse.data.convert.celebamask import convert_celebamask
from faceparse.data.convert.common import ConvertReport
from faceparse.data.convert.helen import convert_helen
from faceparse.data.convert.lapa import convert_lapa

__all__ = ["ConvertReport", "convert_celebamask", "convert_helen", "convert_lapa"]

"""faceparse: face parsing from RGB and depth with cross-domain mutual learning.

Implements Lee, Bhattarai and Kim, "Face Parsing from RGB and Depth Using Cross-Domain Mutual
Learning", CVPR Workshops 2021. See docs/method.md for how each part of the paper maps to code.
"""

__version__ = "0.1.0"

"""Workflows that chain the library's stages into one job: ``demo`` (``faceparse demo``: synthetic data →
pre-training → joint training → evaluation → report) and ``study`` (``faceparse study``: baseline, joint
and a same-length control over seeds, with the ablations, fractions, variants and the flip diagnostic).

They sit above ``engine``, ``eval`` and ``inference`` and below ``cli`` (CONTRIBUTING.md).
"""

"""What a run is, shared by training, evaluation and inference without their importing each other: its
typed config (``config``: dataclasses, YAML presets, ``key=value`` overrides, resolution of ``auto``
values), the stage list, the precision it resolves to (``precision``), and its checkpoints on disk
(``checkpoint``: safetensors weights + metadata that carry the config, label scheme and normalisation).

Layering (CONTRIBUTING.md): ``runs`` sits above ``data``, ``models`` and ``losses`` and below ``engine``,
``eval`` and ``inference``.
"""

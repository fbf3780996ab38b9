"""Evaluation: dataset-level metrics (one confusion matrix per split), paper-style tables and figures.

``faceparse.eval.figures`` imports matplotlib, so it is not imported here; use
``from faceparse.eval.figures import qualitative_figure`` when you need it.
"""

from faceparse.eval.metrics import (
    ConfusionMatrix,
    DepthL1,
    f1_from_confusion,
    group_f1,
    mean_f1,
    parsing_scores,
    score_masks,
)
from faceparse.eval.report import (
    ReportTable,
    ablation_table,
    aggregate_seeds,
    fraction_curves,
    fraction_table,
    method_name,
    parsing_table,
    translation_table,
)
from faceparse.eval.results import (
    Comparison,
    Evaluation,
    GroupScores,
    MaskScores,
    ParsingScores,
    SeedAggregate,
    TranslationScores,
    jsonable,
    metric_at,
)

__all__ = [
    "Comparison",
    "ConfusionMatrix",
    "DepthL1",
    "Evaluation",
    "GroupScores",
    "MaskScores",
    "ParsingScores",
    "ReportTable",
    "SeedAggregate",
    "TranslationScores",
    "ablation_table",
    "aggregate_seeds",
    "f1_from_confusion",
    "fraction_curves",
    "fraction_table",
    "group_f1",
    "jsonable",
    "mean_f1",
    "method_name",
    "metric_at",
    "parsing_scores",
    "parsing_table",
    "score_masks",
    "translation_table",
]

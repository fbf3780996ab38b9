"""Every loss of the paper (§3.2, Eq. 1-4), each small and testable.

* :mod:`faceparse.losses.parsing`: the base parsers' own losses (BiSeNet OHEM CE, EAGRNet parsing + edge +
  edge-attention), ``parser_loss(arch)``, ``main_logits``.
* :mod:`faceparse.losses.translation`: L_DT = L_cGAN + λ·L_L1 (pix2pix).
* :mod:`faceparse.losses.joint`: Eq. 4 itself (``joint_objective``), L_ML, L_E2E and the λ weights.
"""

from faceparse.losses.joint import (
    JointTerms,
    JointWeights,
    MutualLearning,
    e2e_loss,
    joint_objective,
    mutual_learning_loss,
)
from faceparse.losses.parsing import (
    BiSeNetLoss,
    EAGRNetLoss,
    OhemCrossEntropy,
    balanced_edge_loss,
    edge_attention_loss,
    edge_class_weights,
    edge_from_label,
    main_logits,
    masked_cross_entropy,
    ohem_cross_entropy,
    parser_loss,
    upsample_logits,
)
from faceparse.losses.translation import GANLoss, discriminator_loss, generator_loss, l1_loss

__all__ = [
    "BiSeNetLoss",
    "EAGRNetLoss",
    "GANLoss",
    "JointTerms",
    "JointWeights",
    "MutualLearning",
    "OhemCrossEntropy",
    "balanced_edge_loss",
    "discriminator_loss",
    "e2e_loss",
    "edge_attention_loss",
    "edge_class_weights",
    "edge_from_label",
    "generator_loss",
    "joint_objective",
    "l1_loss",
    "main_logits",
    "masked_cross_entropy",
    "mutual_learning_loss",
    "ohem_cross_entropy",
    "parser_loss",
    "upsample_logits",
]

"""A slow learner: the pretrained backbone trains at a hundredth of the head's learning rate."""

from torch import nn

from ..models.heads import Heads
from ..validation import check
from .base import Strategy, make_optimizer


class SlowLearner(Strategy):
    """Fine-tuning with two learning rates: ``lr`` for the heads (every ``models.Heads`` in
    the model) and ``backbone_lr_scale × lr`` for every other trainable parameter.

    The Slow Learner of SLCA (Zhang et al. ICCV 2023, "SLCA: Slow Learner with Classifier
    Alignment": representation lr 0.0001, classifier lr 0.01, a ratio of 0.01): a pretrained
    representation that moves slowly keeps what it knew, while the new head still learns
    the task. SLCA's second part, the classifier alignment after each task (class-wise
    Gaussian statistics of the features, sampled to retrain the head), is not included.
    """

    key = "slow_learner"

    def __init__(self, model: nn.Module, *, backbone_lr_scale: float = 0.01, **step):
        self.backbone_lr_scale = check("backbone_lr_scale", backbone_lr_scale, number=True, above=0, at_most=1,
                                       example=0.01)
        super().__init__(model, **step)

    def make_optimizer(self, params):
        """Two parameter groups over ``params``: the heads' at ``lr``, the rest at
        ``backbone_lr_scale × lr`` (a learning-rate schedule scales both alike)."""
        head_ids = {id(p) for m in self.model.modules() if isinstance(m, Heads) for p in m.parameters()}
        if not head_ids:
            raise ValueError("SlowLearner needs a model with a cl.models.Heads head (ImageClassifier, TextClassifier, "
                             "MLP) to tell the head from the backbone; this model has none.")
        params = list(params)
        lr = self.settings["lr"]
        groups = [{"params": [p for p in params if id(p) in head_ids], "lr": lr},
                  {"params": [p for p in params if id(p) not in head_ids], "lr": lr * self.backbone_lr_scale}]
        return make_optimizer(self.optimizer_name, [g for g in groups if g["params"]], **self.settings)

"""Fine-tuning baselines for editmethods: FT-L (ROME's constrained baseline) and FT-M."""

from editmethods_ft.hparams_ft import FTHyperParams

__all__ = ["FTHyperParams"]

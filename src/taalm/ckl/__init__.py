"""Continual knowledge learning: the weighted loss, the learner and method composition.

A CKL method = token weighting × θ form × optimizer × data stream; each kind of part has its own
registry and folder (``weighting/``, ``theta/``, ``optim/``, ``streams/``), one file per part.
Layer 5 (core, data, models, evaluation, reporting)."""

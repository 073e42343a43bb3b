"""The flow family: normalizing flows trained by maximum likelihood.

`DensityObjective` (objective.py) is the trainer objective of any `jgen.distributions.Flow`
(also the evaluation of CNFs and flow matching); experiment.py is the ``flow`` experiment
family (config → bijector) with the figures and sampling hooks of density models.
"""

from jgen.flows.objective import DensityObjective

__all__ = ["DensityObjective"]

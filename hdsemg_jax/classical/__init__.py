"""Classical baselines: linear classifiers on windowed time-domain features, and chance.

`fit_and_score` (`classical.baseline`) fits and scores one fold with a
`ClassicalSettings`; `is_classical` tells a classical ``model.name`` from a network's.
"""

from hdsemg_jax.classical.baseline import DECISION_RULE, ClassicalSettings, fit_and_score
from hdsemg_jax.classical.models import CHANCE, MODELS, is_classical

__all__ = ['CHANCE', 'ClassicalSettings', 'DECISION_RULE', 'MODELS', 'fit_and_score',
           'is_classical']

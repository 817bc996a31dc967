"""Classical baselines: linear classifiers on windowed time-domain features, and chance.

`fit_and_score` (`classical.baseline`) fits and scores one fold with a
`ClassicalSettings` (its `SelectionSettings`: per-fold model selection on the
training trials, `classical.selection`); `is_classical` tells a classical ``model.name`` from a network's.
"""

from hdsemg_jax.classical.baseline import DECISION_RULE, ClassicalSettings, fit_and_score
from hdsemg_jax.classical.models import CHANCE, MODELS, is_classical
from hdsemg_jax.classical.selection import SelectionSettings

__all__ = ['CHANCE', 'ClassicalSettings', 'DECISION_RULE', 'MODELS', 'SelectionSettings',
           'fit_and_score', 'is_classical']

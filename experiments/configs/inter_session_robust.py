r"""Inter-session without target labels: the recommended recipe against electrode shifts.

  python -m experiments.main --config=experiments/configs/inter_session_robust.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/flexemg_robust

Session 1 trains, each later session tests, as `inter_session.py`. Training
batches are augmented with random whole-electrode shifts along the axis that
wraps round the forearm (`train.augment.max_shift`), and before scoring the
target session's displacement is estimated from its unlabelled inputs and undone,
then BatchNorm statistics are re-estimated on the aligned frames
(`adapt.method=align+adabn`). Alignment and AdaBN read the target's test inputs,
never its labels: transductive, as the rows say (`adapt_method`, `align_shift`).

Expect: RESULTS.md ('Electrode shifts on flexemg') has what this recipe and each of its
parts measured on the real recordings.

The argument after ':' names the dataset (default: synthetic_hdsemg/small).
"""

import ml_collections

from experiments.configs import datasets

# Per dataset family: the augmentation's largest shift and alignment's search range, both
# (rows, columns) in whole electrodes, along the axis that wraps round the forearm (flexemg:
# its 16 rows; CapgMyo and the synthetic data: their 8 columns; see each builder's README).
SHIFTS = {
    'flexemg': dict(augment=(5, 0), align=(8, 1)),
    'capgmyo': dict(augment=(0, 2), align=(2, 4)),
    'synthetic_hdsemg': dict(augment=(0, 2), align=(2, 4)),
}


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  config = datasets.protocol_config('inter_session', dataset)
  shifts = SHIFTS[dataset.split('/')[0]]
  config.train.augment.max_shift = shifts['augment']
  config.adapt.method = 'align+adabn'
  config.adapt.align_max_shift = shifts['align']
  return config

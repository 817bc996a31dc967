r"""Intra-session: per (subject, session), odd repetitions train and even ones test;
where a session has train/test parts (flexemg sessions 1 and 3), train part -> test part.

  python -m experiments.main --config=experiments/configs/intra_session.py:flexemg \\
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/flexemg_intra
  python -m experiments.main --config=experiments/configs/intra_session.py:capgmyo/dba \\
      --config.dataset.manual_dir=DIR --workdir=workdirs/dba_intra

Published (Geng et al. 2016, CapgMyo DB-a, with pre-training): 89.3% per frame,
99.0% with 40-frame majority voting; All-ConvNet (I2MTC 2020) reports comparable
DB-a/DB-b/DB-c intra-session figures without pre-training.

The argument after ':' names the dataset (default: synthetic_hdsemg/small).
"""

import ml_collections

from experiments.configs import datasets


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  return datasets.protocol_config('intra_session', dataset)

r"""Intra-session: per (subject, session), odd repetitions train and even ones test;
where a session has train/test parts (flexemg sessions 1 and 3), train part -> test part.

  python -m experiments.main --config=experiments/configs/intra_session.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/flexemg_intra
  python -m experiments.main --config=experiments/configs/intra_session.py:capgmyo/dba \
      --config.dataset.manual_dir=DIR --workdir=workdirs/dba_intra

All-ConvNet (I2MTC 2020) is trained this way, from scratch; Geng et al. (2016)
pre-train first: that recipe is `intra_session_pretrain.py`. CapgMyo DB-b's
intra-session folds are its session-2 recordings: add `--config.protocol.sessions=2`.

Expect on flexemg (seed 0; measured on a 2-core CPU, 4 minutes): vote@150 98.5 +- 2.7%
over the 6 folds, every fold >= 93%; per frame 86.6 +- 7.5% (RESULTS.md has the table).

The argument after ':' names the dataset (default: synthetic_hdsemg/small).
"""

import ml_collections

from experiments.configs import datasets


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  return datasets.protocol_config('intra_session', dataset)

r"""Inter-subject: leave one subject out. All trials of the other subjects in
the pool (`protocol.subjects`) train; all trials of the held-out subject test.

  python -m experiments.main --config=experiments/configs/leave_one_subject_out.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/flexemg_loso
  python -m experiments.main --config=experiments/configs/leave_one_subject_out.py:capgmyo/dbc \
      --config.dataset.manual_dir=DIR --workdir=workdirs/dbc_loso

Takes the same `config.adapt` options as `inter_session.py` (the target is then
the held-out subject). CapgMyo DB-b's inter-subject folds use its session-2
recordings: add `--config.protocol.sessions=2`.

Expect on flexemg with `--config.train.frame_stride=32` (seed 0; 2-core CPU, 6 minutes):
vote@150 84.1 +- 4.6% over the 3 held-out subjects; per frame 70.4 +- 8.7%.

The argument after ':' names the dataset (default: synthetic_hdsemg/small).
"""

import ml_collections

from experiments.configs import datasets


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  return datasets.protocol_config('leave_one_subject_out', dataset)

r"""Inter-session: per subject, all of session 1 trains; each later session tests
(its test part where it has one: flexemg sessions 2 and 3; all of it for CapgMyo DB-b).

  python -m experiments.main --config=experiments/configs/inter_session.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/flexemg_inter
  python -m experiments.main --config=experiments/configs/inter_session.py:capgmyo/dbb \
      --config.dataset.manual_dir=DIR --workdir=workdirs/dbb_inter

Adaptation to the target session (`config.adapt`): `--config.adapt.method=adabn`
re-estimates BatchNorm statistics on the unlabelled test frames (Du et al. 2017;
the one use of test inputs, never labels); `--config.adapt.method=finetune`
fine-tunes on the first `adapt.finetune_trials` trials of each target gesture and
tests on the rest (All-ConvNet+TL). `--config.adapt.score_on_finetune_split=true`
scores `none`/`adabn` on the same remaining trials, for a like-for-like comparison.

Expect on flexemg (seed 0; 2-core CPU, 6 minutes): vote@150 99.4-100% when testing on
session 2, 23-49% on session 3 (mean 69.7 +- 34.1%); fine-tuning brings session 3 back
(RESULTS.md: adaptation on flexemg).

The argument after ':' names the dataset (default: synthetic_hdsemg/small).
"""

import ml_collections

from experiments.configs import datasets


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  return datasets.protocol_config('inter_session', dataset)

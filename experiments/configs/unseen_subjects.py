r"""Unseen subjects with label-free adaptation: leave-one-subject-out, each method a column.

  python -m experiments.compare_models --config=experiments/configs/unseen_subjects.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/unseen_flexemg

A suite (`experiments/configs/compare_models.py`, same keys and sizing) on
leave-one-subject-out only: All-ConvNet without adaptation and with each
adaptation that reads the held-out subject's signals but never its labels
(``adapt.method``): ``adabn`` (BatchNorm statistics recomputed on the target's
frames), ``align`` (the whole-electrode grid shift under which the target's
electrode co-activation best matches the training subjects', applied to the
target's inputs: `hdsemg_jax.preprocessing.alignment`; the shift found is each
row's ``align_shift``) and ``align+adabn``; LDA without and with ``align``
(a classical model has no BatchNorm). All of them are transductive: the target's
unlabelled test inputs are read before scoring. Tests: All-ConvNet without
adaptation against each. RESULTS.md, "Unseen subjects", has what this gave on
flexemg.
"""

import ml_collections

from experiments.configs import compare_models

NETWORK_METHODS = ('adabn', 'align', 'align+adabn')


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  config = compare_models.get_config(dataset)
  config.suite.protocols = ('leave_one_subject_out',)
  config.suite.models = ('all_convnet', *(f'all_convnet@{m}' for m in NETWORK_METHODS), 'lda',
                         'lda@align')
  config.suite.reference = 'all_convnet'
  for label in config.suite.models:
    if '@' in label:
      config.suite.model_overrides[label] = ml_collections.ConfigDict(
          {'adapt': {'method': label.split('@')[1]}})
  return config

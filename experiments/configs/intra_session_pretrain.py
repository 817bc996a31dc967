r"""Intra-session with pre-training (Geng et al. 2016's recipe): the folds of
intra_session (per subject and session, odd repetitions train, even ones test),
but the model is first pre-trained on the training trials of every subject and
session in the pool, then fine-tuned on the target's own training trials
(`adapt.finetune_epochs`, `adapt.finetune_learning_rate`, `adapt.finetune_layers`)
and tested on its test trials. One pre-training per seed is shared by all folds.

  python -m experiments.main --config=experiments/configs/intra_session_pretrain.py:capgmyo/dba \
      --config.dataset.manual_dir=DIR --workdir=workdirs/dba_intra_pretrain
  python -m experiments.main --config=experiments/configs/intra_session_pretrain.py:capgmyo/dba \
      --config.dataset.manual_dir=DIR --config.model.name=geng_convnet \
      --workdir=workdirs/dba_intra_pretrain_geng

Published (Geng et al. 2016, their ConvNet = `geng_convnet`, CapgMyo DB-a): 89.3%
per frame, 99.0% with 40-frame majority voting (`vote_accuracy/40`).

The argument after ':' names the dataset (default: synthetic_hdsemg/small).
"""

import ml_collections

from experiments.configs import datasets


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  return datasets.protocol_config('intra_session_pretrain', dataset)

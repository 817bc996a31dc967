"""Saved models: written at the end of every (fold, seed), loaded for prediction.

A model folder holds ``model.json`` (what rebuilds the network: model name and
keyword arguments, classes, grid shape) and ``weights/`` (an Orbax checkpoint of
the parameters and BatchNorm statistics). ``model.json`` is written last, so a
folder without it is an unfinished write.

  model = hdsemg_jax.load_model(workdir, 'S01-s1', seed=0)
  classes = model.predict(frames)             # frames (N, H, W) -> (N,) class indices
  voted = model.predict_vote(frames, 150)     # the majority class of every 150-frame window

`random_model` builds an untrained network with the same interface (for speed
measurements and tests, where what it predicts does not matter).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from flax import nnx

from hdsemg_jax import checkpointing, models, workdir
from hdsemg_jax.evaluation import evaluate, voting
from hdsemg_jax.preprocessing.filters import Conditioning
from hdsemg_jax.reporting import results
from hdsemg_jax.training import state as state_lib, steps

INFO_FILE = 'model.json'
WEIGHTS_DIR = 'weights'
# `ModelInfo.dataset` of a `random_model`: no data behind it.
RANDOM_WEIGHTS = 'random weights'


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What is needed to rebuild a saved model, and where it came from."""
  model: str
  model_kwargs: dict[str, Any]  # The run's ``model.*`` keys (``name`` aside).
  num_classes: int
  grid_shape: tuple[int, int]
  class_names: tuple[str, ...]
  dataset: str
  dataset_version: str
  fold: str
  seed: int
  # Evaluation predicts in batches of this size; predicting alike reproduces its classes exactly.
  eval_batch_size: int
  # How the frames it was trained on were conditioned: what export and streaming apply.
  conditioning: Conditioning

  def as_dict(self) -> dict[str, Any]:
    return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            'conditioning': self.conditioning.as_dict()}


def save_model(directory: str, state: state_lib.TrainState, info: ModelInfo) -> None:
  """Writes the weights of ``state`` and ``info`` to ``directory`` (replacing an older save)."""
  os.makedirs(directory, exist_ok=True)
  info_path = os.path.join(directory, INFO_FILE)
  if os.path.exists(info_path):
    os.remove(info_path)  # The folder is unfinished until the new weights are complete.
  tree = {'params': checkpointing.to_tree(state.params),
          'batch_stats': checkpointing.to_tree(state.batch_stats)}
  checkpointing.save_tree(os.path.join(directory, WEIGHTS_DIR), tree)
  results.write_json(info_path, info.as_dict())


class Model:
  """A trained model: ``predict`` frames, ``predict_vote`` windows of frames."""

  def __init__(self, info: ModelInfo, graphdef: nnx.GraphDef, params: nnx.State,
               batch_stats: nnx.State):
    self.info = info
    self.graphdef, self.params, self.batch_stats = graphdef, params, batch_stats
    # The compiled prediction that scored the model in its run.
    self._classes = steps.make_predict(graphdef)

  def logits_fn(self) -> Callable[[jax.Array], jax.Array]:
    """A pure ``frames (N, H, W) -> logits (N, G)`` in inference mode, closed over the weights.

    For `jax.jit`, `jax.export` and converters (the running BatchNorm statistics).
    """
    graphdef, params, batch_stats = self.graphdef, self.params, self.batch_stats

    def logits(frames: jax.Array) -> jax.Array:
      return state_lib.apply_model(graphdef, params, batch_stats, frames, train=False)[0]
    return logits

  @property
  def class_names(self) -> tuple[str, ...]:
    return self.info.class_names

  def predict(self, frames: np.ndarray) -> np.ndarray:
    """The predicted class index of each frame of ``frames`` (N, H, W)."""
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 3 or tuple(frames.shape[1:]) != tuple(self.info.grid_shape):
      raise ValueError(f'frames must have shape (N, {self.info.grid_shape[0]}, '
                       f'{self.info.grid_shape[1]}); got {frames.shape}.')
    return evaluate.predict_frames(lambda x: self._classes(self.params, self.batch_stats, x),
                                   frames, self.info.eval_batch_size)

  def predict_vote(self, frames: np.ndarray, window: int) -> np.ndarray:
    """The majority class of every full ``window`` of consecutive frames (one if fewer)."""
    if window < 1:
      raise ValueError(f'window must be positive; got {window}.')
    return voting.window_votes(self.predict(frames), window, self.info.num_classes)


def read_info(directory: str) -> ModelInfo:
  path = os.path.join(directory, INFO_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'no saved model at {directory} (missing {INFO_FILE}); has this '
                            'fold and seed finished?')
  raw = results.read_json(path, 'a saved model description')
  try:
    raw['grid_shape'] = tuple(raw['grid_shape'])
    raw['class_names'] = tuple(raw['class_names'])
    if 'conditioning' not in raw:  # Saved before the conditioning was one object.
      raw['conditioning'] = {'filters': raw.pop('filters', ()),
                             'mode': raw.pop('filter_mode', 'zero_phase'),
                             'sampling_rate_hz': raw.pop('sampling_rate_hz', None)}
    raw['conditioning'] = Conditioning.from_dict(raw['conditioning'])
    return ModelInfo(**raw)
  except (TypeError, KeyError, ValueError) as e:
    raise checkpointing.CheckpointError(f'{path}: not a model description ({e}).') from None


def load_model_dir(directory: str) -> Model:
  """The model saved in ``directory`` by `save_model`."""
  info = read_info(directory)
  model_config = {**info.model_kwargs, 'name': info.model}
  skeleton = models.build_from_config(model_config, info.num_classes, info.grid_shape, seed=0)
  graphdef, params, batch_stats = state_lib.split_model(skeleton)
  like = {'params': checkpointing.to_tree(params),
          'batch_stats': checkpointing.to_tree(batch_stats)}
  weights = os.path.join(directory, WEIGHTS_DIR)
  tree = checkpointing.load_tree(weights, like)
  return Model(info, graphdef, checkpointing.from_tree(tree['params'], params, weights),
               checkpointing.from_tree(tree['batch_stats'], batch_stats, weights))


def load_model(run_dir: str, fold: str, seed: int) -> Model:
  """The final model of ``fold`` and ``seed`` of the experiment in ``run_dir``."""
  return load_model_dir(workdir.model_dir(run_dir, fold, int(seed)))


def random_model(model_name: str, model_kwargs: Mapping[str, Any], num_classes: int,
                 grid_shape: Sequence[int], conditioning: Conditioning, seed: int = 0,
                 eval_batch_size: int = 1000) -> Model:
  """An untrained network as a `Model`: parameters drawn from ``seed``, never trained.

  Args:
    model_name: ``model.name`` (a network of `hdsemg_jax.models.MODEL_KEYS`).
    model_kwargs: its ``model.*`` keys (those the network does not read are dropped,
      as a run's saved ``model.json`` holds only the network's own).
    num_classes: classes of the output layer; named ``class 0``, ``class 1``, ...
    grid_shape: ``(H, W)`` of the frames.
    conditioning: the filter chain, mode and rate its info carries (what export and
      the streaming decoder apply).
    seed: parameter initialisation.
    eval_batch_size: frames per call of `Model.predict`.

  Its info's ``dataset`` is `RANDOM_WEIGHTS`, ``dataset_version`` empty and ``fold`` ``'-'``.
  """
  name = models.check_name(model_name)
  grid = (int(grid_shape[0]), int(grid_shape[1]))
  module = models.build_from_config({**model_kwargs, 'name': name}, int(num_classes), grid,
                                    seed=int(seed))
  graphdef, params, batch_stats = state_lib.split_model(module)
  info = ModelInfo(
      model=name, model_kwargs={k: model_kwargs[k] for k in models.MODEL_KEYS[name]},
      num_classes=int(num_classes), grid_shape=grid,
      class_names=tuple(f'class {i}' for i in range(int(num_classes))), dataset=RANDOM_WEIGHTS,
      dataset_version='', fold='-', seed=int(seed), eval_batch_size=int(eval_batch_size),
      conditioning=conditioning)
  return Model(info, graphdef, params, batch_stats)

"""hdsemg-jax: reproducible benchmarking of gesture recognition from HD-sEMG frames."""

from typing import Any


def load_model(workdir: str, fold: str, seed: int) -> Any:
  """The final model of ``fold`` and ``seed`` saved by an experiment in ``workdir``.

  Returns an `hdsemg_jax.saved_model.Model`: ``predict(frames)``, ``predict_vote(frames,
  window)``, ``class_names``. Imported lazily so ``import hdsemg_jax`` stays cheap.
  """
  from hdsemg_jax import saved_model
  return saved_model.load_model(workdir, fold, seed)

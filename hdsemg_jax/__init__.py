"""hdsemg-jax: reproducible benchmarking of gesture recognition from HD-sEMG frames."""

from typing import Any


def load_model(workdir: str, fold: str, seed: int) -> Any:
  """The final model of ``fold`` and ``seed`` saved by an experiment in ``workdir``.

  Returns an `hdsemg_jax.inference.Model`: ``predict(frames)``, ``predict_vote(frames,
  window)``, ``class_names``. Imported lazily so ``import hdsemg_jax`` stays cheap.
  """
  from hdsemg_jax import inference
  return inference.load_model(workdir, fold, seed)

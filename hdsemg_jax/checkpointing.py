"""Orbax checkpoints of training states and of finished models.

A `TrainState` is saved as a nested dict of plain arrays keyed by the names of
its pytree path (``params/convs/0/kernel/value``...), the PRNG key as its raw key
data. Restoring goes back through the paths of a freshly created state of the
same model, so the stored files never depend on Python classes (nnx.State,
optax states) and a mismatch is an error naming the missing entry.

Every write is synchronous: training continues only once the checkpoint is on
disk, so a kill at any later point finds it, and the compiled step may donate
the arrays that were just written.

States are written and read as host (numpy) arrays, whatever devices they came
from: on several processes (``jax.distributed``) every process holds the same
replicated state, all take part in the save (Orbax's barriers), and the files
are those of a one-process run. A finished model (`save_tree`) is written by the
one process that calls it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import Any, Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp

from hdsemg_jax.training import state as state_lib

# A few recent steps suffice: a resume only ever needs the latest one.
MAX_TO_KEEP = 2


class CheckpointError(ValueError):
  """A checkpoint cannot be read or does not fit the model; the message names its path."""


def _first_line(error: BaseException) -> str:
  # TensorStore's errors carry its whole spec (dozens of lines); the first line says what.
  text = str(error).strip().splitlines()[0] if str(error).strip() else ''
  text = text.split(' See full TensorStore details')[0]
  return f'{type(error).__name__}: {text[:300].rstrip(".")}'


@contextlib.contextmanager
def _reading(where: str) -> Iterator[None]:
  """Reads a checkpoint; a failure is one `CheckpointError` naming ``where``.

  A corrupt checkpoint makes Orbax leave many read coroutines failed; Python would
  print "Exception ignored in <coroutine ...>" and a traceback for each as they are
  collected. They are collected here, quietly: the error raised says it all.
  """
  try:
    yield
  except Exception as e:  # Orbax and TensorStore raise many types; all mean the same here.
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
      gc.collect()
    finally:
      sys.unraisablehook = hook
    raise CheckpointError(f'cannot read checkpoint {where}: {_first_line(e)}. Delete that '
                          'folder (a training checkpoint: to restart from the previous one; a '
                          'saved model: to train it again).') from None


def _name(entry: Any) -> str:
  for attr in ('key', 'idx', 'name'):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def _is_key(leaf: Any) -> bool:
  return hasattr(leaf, 'dtype') and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def to_tree(value: Any) -> dict[str, Any]:
  """``value`` (any pytree of arrays) as a nested dict of arrays keyed by path names."""
  tree: dict[str, Any] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
    names = [_name(p) for p in path] or ['value']
    node = tree
    for n in names[:-1]:
      node = node.setdefault(n, {})
    node[names[-1]] = jax.random.key_data(leaf) if _is_key(leaf) else leaf
  return tree


def from_tree(tree: dict[str, Any], like: Any, where: str) -> Any:
  """The inverse of `to_tree`: ``tree``'s arrays in the structure of ``like``."""
  leaves = []
  paths, treedef = jax.tree_util.tree_flatten_with_path(like)
  for path, ref in paths:
    node = tree
    names = [_name(p) for p in path] or ['value']
    for n in names:
      if not isinstance(node, dict) or n not in node:
        raise CheckpointError(f'{where}: checkpoint lacks {"/".join(names)}; was it written '
                              'by another model or config?')
      node = node[n]
    if _is_key(ref):
      node = jax.random.wrap_key_data(node, impl=jax.random.key_impl(ref))
    elif tuple(np.shape(node)) != tuple(np.shape(ref)):
      raise CheckpointError(f'{where}: {"/".join(names)} has shape {np.shape(node)}, '
                            f'the model expects {np.shape(ref)}.')
    leaves.append(node)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _on_host(tree: dict[str, Any]) -> dict[str, Any]:
  # A copy of one device's replica (np.asarray of a replicated global array would need the
  # other processes' shards).
  def host(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)
    return np.asarray(x)
  return jax.tree.map(host, tree)


def _abstract(tree: dict[str, Any]) -> dict[str, Any]:
  # numpy targets: Orbax restores numpy arrays, placed later by the caller's plan.
  return jax.tree.map(lambda x: np.zeros(np.shape(x), x.dtype), tree)


class TrainCheckpoints:
  """The training checkpoints of one (fold, seed), in ``directory``."""

  def __init__(self, directory: str):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=MAX_TO_KEEP, create=True,
                                           enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    try:
      self._manager = ocp.CheckpointManager(self.directory, options=options)
    except Exception as e:  # Orbax raises many types; the caller needs the path.
      raise CheckpointError(f'cannot open checkpoint folder {self.directory}: {e}') from e

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: state_lib.TrainState) -> None:
    step = int(state.step)
    if step in self._manager.all_steps():
      return  # Already on disk (e.g. the last interval checkpoint is also the final one).
    self._manager.save(step, args=ocp.args.StandardSave(_on_host(to_tree(state))), force=True)
    self._manager.wait_until_finished()

  def restore(self, like: state_lib.TrainState) -> state_lib.TrainState | None:
    """The latest saved state (in the structure of ``like``), or None if none was saved."""
    step = self.latest_step()
    if step is None:
      return None
    where = os.path.join(self.directory, str(step))
    with _reading(where):
      tree = self._manager.restore(step, args=ocp.args.StandardRestore(_abstract(to_tree(like))))
    return from_tree(tree, like, where)

  def close(self) -> None:
    self._manager.close()


def _this_process_only() -> ocp.Checkpointer:
  """A checkpointer that waits for no other process (a model is one process's file)."""
  alone = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                             active_processes={jax.process_index()})
  return ocp.Checkpointer(ocp.StandardCheckpointHandler(multiprocessing_options=alone),
                          multiprocessing_options=alone)


def save_tree(directory: str, tree: dict[str, Any]) -> None:
  """Writes ``tree`` (a nested dict of arrays) to ``directory``, replacing what was there."""
  with _this_process_only() as checkpointer:
    checkpointer.save(os.path.abspath(directory), args=ocp.args.StandardSave(_on_host(tree)), force=True)


def load_tree(directory: str, like: dict[str, Any]) -> dict[str, Any]:
  """Reads a tree written by `save_tree` with the shapes and dtypes of ``like``."""
  directory = os.path.abspath(directory)
  with _reading(directory):
    with _this_process_only() as checkpointer:
      return checkpointer.restore(directory, args=ocp.args.StandardRestore(_abstract(like)))

"""Where training runs: one device, `jax.pmap`, or `jax.jit` over a device mesh.

A `Plan` lays out the training state, the on-device dataset and the batches, and
compiles the one train-step body of `steps.train_step_fn` for its mode:

* ``none``: `jax.jit` on the default device (the single-device path).
* ``pmap``: the step under `jax.pmap` with axis ``'data'``. State and dataset are
  replicated along a leading device axis; each device gathers its share of the
  global batch, gradients and loss/accuracy are averaged with `lax.pmean`, and
  BatchNorm averages its batch statistics across devices (cross-replica BN: the
  step's graph has every BatchNorm's ``axis_name`` set, `with_batchnorm_axis`).
* ``sharding``: `jax.jit` over a 1-D ``('data',)`` `Mesh`: state and dataset
  replicated (``P()``), the batch indices, hence the gathered batch, split along
  the batch axis (``P('data')``). The program is the single-device one, which XLA
  partitions; BatchNorm sees the global batch without an axis name.

In every mode the global batch is ``train.batch_size`` whatever the device count,
so it must divide by the device count; each device gets an equal, contiguous share.
With equal shares, all three modes compute the same update up to float rounding
(models with dropout aside: its masks are drawn per device under ``pmap``).

With ``stacked=True`` the step is also vmapped over a leading seed axis of the
state and of the batch indices (`state.SEED_AXES`): several seeds in one program.

Several hosts (after `runtime.initialize_distributed`): the mesh spans every
process's devices, and each host places only its own devices' shards: its part
of every global batch, its copies of the replicated state and dataset (under
``pmap`` as host-local arrays over its own devices, which `jax.pmap` joins).
Scoring gathers the predictions of all hosts. The single-host paths are the
same code.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hdsemg_jax.training import state as state_lib, steps

MODES = ('auto', 'none', 'pmap', 'sharding')
AXIS = 'data'


def resolve_mode(mode: str, num_devices: int) -> str:
  """``parallel`` without ``'auto'``: ``sharding`` if several devices are visible, else ``none``."""
  if mode not in MODES:
    raise ValueError(f'parallel={mode!r} is not known (known: {", ".join(MODES)}).')
  if mode == 'auto':
    return 'sharding' if num_devices > 1 else 'none'
  return mode


def with_batchnorm_axis(graphdef: nnx.GraphDef, params: Any, batch_stats: Any,
                        axis_name: str | None) -> nnx.GraphDef:
  """``graphdef`` with every BatchNorm averaging its batch statistics over ``axis_name``.

  The axis is static structure of the graph, so the same parameters and
  statistics fit both graphs; `fit` returns the original one, which runs outside
  `pmap` (evaluation, AdaBN, saved models).
  """
  model = nnx.merge(graphdef, params, batch_stats)
  for _, module in nnx.iter_modules(model):
    if isinstance(module, nnx.BatchNorm):
      module.axis_name = axis_name
  return nnx.split(model, nnx.Param, nnx.BatchStat)[0]


def _host_array(x: Any) -> Any:
  return x if isinstance(x, jax.Array) else np.asarray(x)


@dataclasses.dataclass(frozen=True)
class Plan:
  """A parallel mode and the devices it spans (hashable: compiled steps are cached by it)."""
  mode: str = 'none'
  mesh: Mesh | None = None

  @classmethod
  def create(cls, mode: str = 'none', devices: Any = None) -> Plan:
    devices = list(jax.devices() if devices is None else devices)
    mode = resolve_mode(mode, len(devices))
    if mode == 'none':
      return cls()
    return cls(mode, Mesh(np.array(devices), (AXIS,)))

  @property
  def num_devices(self) -> int:
    return 1 if self.mesh is None else self.mesh.size

  def _local_devices(self) -> list[jax.Device]:
    return [d for d in self.mesh.devices.flat if d.process_index == jax.process_index()]

  def check_batch(self, batch_size: int, key: str) -> None:
    """A clear error unless the global batch ``key`` divides by the device count."""
    n = self.num_devices
    if batch_size % n:
      raise ValueError(
          f'{key}={batch_size} does not divide by the {n} devices of parallel={self.mode}: the '
          f'global batch is split evenly over the devices; use a multiple of {n} (or fewer '
          'devices: num_cpu_devices on a CPU).')

  # Layout of state, dataset and batches.

  def replicate(self, tree: Any) -> Any:
    """``tree`` placed for the step: a copy per device (``pmap``: along a leading axis)."""
    if self.mesh is None:
      return jax.device_put(tree)
    devices = self._local_devices()
    if self.mode == 'pmap':
      # pmap takes host-local arrays (a leading axis over this host's devices) and makes the
      # global ones itself.
      sharding = self._pmap_sharding()
      return jax.tree.map(lambda x: jax.make_array_from_single_device_arrays(
          (len(devices), *np.shape(x)), sharding,
          [jax.device_put(_host_array(x)[None], d) for d in devices]), tree)
    sharding = NamedSharding(self.mesh, P())
    return jax.tree.map(lambda x: jax.make_array_from_single_device_arrays(
        np.shape(x), sharding, [jax.device_put(_host_array(x), d) for d in devices]), tree)

  def _pmap_sharding(self) -> NamedSharding:
    return NamedSharding(Mesh(np.array(self._local_devices()), (AXIS,)), P(AXIS))

  def _local_rows(self) -> list[int]:
    # This host's devices' positions along the mesh: its shares of a global batch.
    return [i for i, d in enumerate(self.mesh.devices.flat)
            if d.process_index == jax.process_index()]

  def unreplicate(self, tree: Any) -> Any:
    """One device's copy of a replicated ``tree``: what checkpoints, scoring and AdaBN use."""
    if self.mesh is None:
      return tree
    if self.mode == 'pmap':
      return jax.tree.map(lambda x: x.addressable_data(0).reshape(x.shape[1:]), tree)
    return jax.tree.map(lambda x: x.addressable_data(0), tree)

  def put_epoch(self, batches: Any) -> jax.Array:
    """An epoch's batch indices ``(steps, ..., batch)`` placed once, split along the batch."""
    if self.mesh is None:
      return batches
    batches = np.asarray(batches)
    if self.mode == 'pmap':
      # (steps, ..., D * b) -> (D, steps, ..., b): device d gets the d-th contiguous share,
      # as the mesh's P('data') does.
      *lead, b = batches.shape
      batches = np.moveaxis(batches.reshape(*lead, self.num_devices, b // self.num_devices),
                            -2, 0)[self._local_rows()]
      return jax.make_array_from_callback(batches.shape, self._pmap_sharding(),
                                          lambda index: batches[index])
    sharding = NamedSharding(self.mesh, P(*([None] * (batches.ndim - 1)), AXIS))
    return jax.make_array_from_callback(batches.shape, sharding, lambda index: batches[index])

  def batch_at(self, epoch_batches: jax.Array, i: int) -> jax.Array:
    """The indices of step ``i`` of an epoch placed by `put_epoch`."""
    return epoch_batches[:, i] if self.mode == 'pmap' else epoch_batches[i]

  # Compiled programs.

  def train_graphdef(self, graphdef: nnx.GraphDef, params: Any, batch_stats: Any) -> nnx.GraphDef:
    """The graph the train step runs: with cross-replica BatchNorm under ``pmap``."""
    if self.mode != 'pmap':
      return graphdef
    return with_batchnorm_axis(graphdef, params, batch_stats, AXIS)

  def compile_train_step(self, graphdef: nnx.GraphDef, tx: optax.GradientTransformation, *,
                         stacked: bool = False,
                         options: steps.StepOptions = steps.StepOptions()) -> steps.TrainStep:
    """`steps.train_step_fn` compiled for this plan (the state donated).

    ``graphdef`` is `train_graphdef`'s. ``stacked``: vmapped over a leading seed
    axis of the state and of the batch indices; frames and labels are shared.
    ``options``: augmentation and XLA compiler options; `jax.pmap` takes no compiler
    options, so under ``pmap`` those are ignored.
    """
    axis_name = AXIS if self.mode == 'pmap' else None
    batch_sharding = NamedSharding(self.mesh, P(AXIS)) if self.mode == 'sharding' else None
    fn = steps.train_step_fn(graphdef, tx, axis_name=axis_name, batch_sharding=batch_sharding,
                             options=options)
    if stacked:
      axes = state_lib.SEED_AXES
      fn = jax.vmap(fn, in_axes=(axes, None, None, 0), out_axes=(axes, 0))
    if self.mode == 'pmap':
      # jax.pmap takes no compiler options: XLA's defaults.
      return jax.pmap(fn, axis_name=AXIS, donate_argnums=0)
    options = dict(options.compiler_options) or None
    if self.mode == 'none':
      return jax.jit(fn, donate_argnums=0, compiler_options=options)
    replicated = NamedSharding(self.mesh, P())
    batch = NamedSharding(self.mesh, P(None, AXIS) if stacked else P(AXIS))
    return jax.jit(fn, in_shardings=(replicated, replicated, replicated, batch),
                   out_shardings=(replicated, replicated), donate_argnums=0,
                   compiler_options=options)

  def predictor(self, graphdef: nnx.GraphDef,
                state: state_lib.TrainState) -> Callable[[np.ndarray], np.ndarray]:
    """``frames -> predicted classes`` of one (unreplicated) ``state``, split over the devices.

    A batch must divide by the device count (`check_batch` with ``eval.batch_size``);
    `evaluation.evaluate.predict_frames` pads the last one and drops the padding.
    """
    if self.mesh is None:
      single = steps.make_predict(graphdef)
      return lambda x: single(state.params, state.batch_stats, x)
    body = steps.predict_fn(graphdef)  # Running statistics: no cross-device BatchNorm.
    replicated = self.replicate((state.params, state.batch_stats))
    n = self.num_devices
    split = NamedSharding(self.mesh, P(AXIS))
    compiled = (jax.pmap(body, axis_name=AXIS) if self.mode == 'pmap' else
                jax.jit(body, out_shardings=split))

    def predict(x: np.ndarray) -> np.ndarray:
      x = np.asarray(x)
      self.check_batch(len(x), 'eval.batch_size')
      if self.mode == 'pmap':
        x = x.reshape(n, len(x) // n, *x.shape[1:])[self._local_rows()]
        placed = jax.make_array_from_callback(x.shape, self._pmap_sharding(),
                                              lambda index: x[index])
      else:
        placed = jax.make_array_from_callback(x.shape, split, lambda index: x[index])
      out = compiled(*replicated, placed)
      if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        out = multihost_utils.process_allgather(out, tiled=True)
      return np.asarray(out).reshape(-1)

    return predict


def stack_metrics(metrics: list[dict[str, jax.Array]], plan: Plan) -> dict[str, np.ndarray]:
  """Per-step metrics (one device's copy) stacked along a leading step axis, on the host."""
  host = [plan.unreplicate(m) for m in metrics]
  return {k: np.stack([np.asarray(m[k]) for m in host]) for k in host[0]} if host else {}


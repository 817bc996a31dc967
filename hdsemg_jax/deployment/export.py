"""Exports a saved model to ONNX or StableHLO, checked against JAX before it is kept.

  python -m experiments.export RUN_DIR --fold=S1-s1 --seed=0 --format=onnx --out=export/
  hdsemg_jax.run.export_run.export_run(run_dir, 'S1-s1', 0, 'onnx', 'export/')  # the same call
  export.export_model(model, 'export/', 'onnx', parity_frames)             # any saved model

writes ``export/model.onnx`` (or ``model.stablehlo``) and ``model.onnx.json`` beside it.
The artifact computes ``frames (N, H, W) float32 -> logits (N, G) float32`` for any
N, in inference mode (BatchNorm's running statistics, no dropout), and runs without
this project:

* ONNX (jax2onnx, opset 23): input ``frames``, output ``logits``, dynamic batch.
  ``onnxruntime.InferenceSession(path).run(['logits'], {'frames': x})[0]``.
* StableHLO (`jax.export`, serialized with its calling convention, symbolic batch
  ``N``, lowered for the exporting machine's platform unless ``platforms`` says
  otherwise): ``jax.export.deserialize(data).call(x)``.

The JSON holds what a consumer needs besides the network: class names, grid
shape, the model's ``conditioning`` (filter chain, mode and sampling rate it was
trained with, the same object as in its saved ``model.json``) (a live decoder applies the chain's causal form,
`hdsemg_jax.streaming`), fold, seed, the model's name and settings, the
artifact's sha256, the parity check below and provenance (run folder, code
version, library versions, time).

Parity: before anything is kept, the artifact is read back from disk, run by its
own runtime (ONNX Runtime, or the deserialized module) on real frames of the
fold's test set (its usable frames, conditioned as in training, at most
``max_parity_frames`` of them evenly spread), and compared with the JAX model's
logits: the largest absolute logit difference must be at most ``atol`` and the
argmax must agree on every frame. Otherwise `ParityError` is raised and nothing
is written to the output folder. Files are staged in a hidden sibling folder
and moved in only after the check, the JSON last: an artifact without its JSON
is an unfinished export, and `artifacts.load_artifact` refuses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from hdsemg_jax import provenance
from hdsemg_jax.deployment import artifacts
from hdsemg_jax.reporting import results

FORMATS = artifacts.FORMATS
ARTIFACT_BASENAME = 'model'
# float32 logits of the same network through two compilers differ by rounding only:
# ~1e-6 of their scale (measured: <= 3e-6 on a trained tiny All-ConvNet).
DEFAULT_ATOL = 1e-4
DEFAULT_MAX_PARITY_FRAMES = 2048
ONNX_OPSET = 23
_EXTRA_PACKAGES = ('jax2onnx', 'onnx', 'onnxruntime')


class ExportableModel(Protocol):
  """What an export reads of a model: an `hdsemg_jax.saved_model.Model` is one.

  A protocol rather than an import, so that deployment never depends on the layer
  that saves models (which scores them through the streaming decoder's layer).
  """
  info: Any  # A `saved_model.ModelInfo`: grid, classes, conditioning, fold, seed, ...
  graphdef: Any
  params: Any
  batch_stats: Any

  def logits_fn(self) -> Callable[[Any], Any]: ...


class ExportError(RuntimeError):
  """An export that could not be made; nothing was written."""


class ParityError(ExportError):
  """The exported artifact does not reproduce the JAX model's logits."""


@dataclasses.dataclass(frozen=True)
class Parity:
  """The artifact against the JAX model on ``frames`` test frames."""
  frames: int
  max_abs_logit_diff: float
  argmax_mismatches: int
  atol: float
  source: str

  @property
  def ok(self) -> bool:
    return self.max_abs_logit_diff <= self.atol and self.argmax_mismatches == 0

  def as_dict(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), 'argmax_equal': self.argmax_mismatches == 0,
            'ok': self.ok}


@dataclasses.dataclass(frozen=True)
class ExportResult:
  artifact: str  # Path of model.onnx / model.stablehlo.
  metadata: str  # Path of the JSON beside it.
  parity: Parity


def artifact_function(model: ExportableModel) -> Callable[[Any], Any]:
  """The function written into the artifact: the model's inference-mode logits.

  Convolutions run as `lax.conv_general_dilated` whatever ``model.conv_impl`` the
  model was trained with: the formulations differ in their gradients only, so the
  artifact holds the plain convolution rather than a `jax.custom_vjp` wrapper that
  a converter would have to understand.
  """
  from flax import nnx
  from jax import lax

  from hdsemg_jax.training import state as state_lib

  module = nnx.merge(model.graphdef, model.params, model.batch_stats, copy=True)
  plain = True
  for _, m in module.iter_modules():
    if isinstance(m, nnx.Conv) and m.conv_general_dilated is not lax.conv_general_dilated:
      m.conv_general_dilated = lax.conv_general_dilated
      plain = False
  if plain:
    return model.logits_fn()
  graphdef, params, batch_stats = state_lib.split_model(module)

  def logits(frames: Any) -> Any:
    return state_lib.apply_model(graphdef, params, batch_stats, frames, train=False)[0]

  return logits


# jax2onnx logs its progress, and a traceback for each optional plugin (dm_pix) that
# fails to import against this JAX; onnx_ir a warning per untyped constant shape.
# None of it concerns this network, whose conversion is checked by parity instead.
_NOISY_LOGGERS = ('jax2onnx', 'onnx_ir')


@contextlib.contextmanager
def _quiet(names: Sequence[str]) -> Iterator[None]:
  loggers = [logging.getLogger(n) for n in names]
  levels = [lg.level for lg in loggers]
  for lg in loggers:
    lg.setLevel(logging.ERROR)
  try:
    yield
  finally:
    for lg, level in zip(loggers, levels):
      lg.setLevel(level)


def onnx_bytes(logits_fn: Callable[[Any], Any], grid_shape: Sequence[int],
               model_name: str = 'hdsemg_jax') -> bytes:
  """``logits_fn`` as a serialized ONNX model with a dynamic batch dimension ``N``."""
  onnx = artifacts.import_extra('onnx')
  with _quiet(_NOISY_LOGGERS):
    to_onnx = artifacts.import_extra('jax2onnx').to_onnx
    proto = to_onnx(logits_fn, [('N', *grid_shape)], model_name=model_name, opset=ONNX_OPSET,
                    input_names=[artifacts.INPUT_NAME], output_names=[artifacts.OUTPUT_NAME])
  # jax2onnx annotates intermediate values with NHWC shapes that ONNX Runtime's own
  # inference disagrees with (a warning per tensor at every load); they are optional.
  del proto.graph.value_info[:]
  onnx.checker.check_model(proto)
  return proto.SerializeToString()


def stablehlo_bytes(logits_fn: Callable[[Any], Any], grid_shape: Sequence[int],
                    platforms: Sequence[str] | None = None) -> bytes:
  """``logits_fn`` serialized by `jax.export` with a symbolic batch dimension ``N``."""
  import jax
  import jax.numpy as jnp
  from jax import export

  artifacts.import_extra('flatbuffers')  # jax.export serializes with it.
  n, = export.symbolic_shape('N')
  exported = export.export(jax.jit(logits_fn), platforms=platforms)(
      jax.ShapeDtypeStruct((n, *grid_shape), jnp.float32))
  return bytes(exported.serialize())


def reference_logits(model: ExportableModel, frames: np.ndarray) -> np.ndarray:
  """The JAX model's logits of ``frames``: what an artifact must reproduce."""
  import jax
  return np.asarray(jax.jit(model.logits_fn())(np.asarray(frames, np.float32)))


def check_parity(reference: np.ndarray, got: np.ndarray, atol: float, source: str) -> Parity:
  if got.shape != reference.shape:
    raise ParityError(f'the artifact returned logits of shape {got.shape}, the model '
                      f'{reference.shape}.')
  diff = float(np.max(np.abs(got.astype(np.float64) - reference))) if got.size else 0.0
  if not np.isfinite(diff):
    diff = float('inf')
  mismatches = int(np.sum(np.argmax(got, -1) != np.argmax(reference, -1)))
  return Parity(frames=len(reference), max_abs_logit_diff=diff, argmax_mismatches=mismatches,
                atol=float(atol), source=source)




def describe(model: ExportableModel, fmt: str, artifact_name: str, data: bytes, parity: Parity,
             source: dict[str, Any] | None = None) -> dict[str, Any]:
  """The JSON written beside an artifact."""
  info = model.info
  h, w = info.grid_shape
  load = {'onnx': f"onnxruntime.InferenceSession('{artifact_name}').run(['logits'], "
                  "{'frames': frames})[0]",
          'stablehlo': f"jax.export.deserialize(open('{artifact_name}', 'rb').read())"
                       '.call(frames)'}[fmt]
  return {
      'format': fmt,
      'artifact': artifact_name,
      'sha256': artifacts.sha256(data),
      'input': {'name': artifacts.INPUT_NAME, 'shape': ['N', h, w], 'dtype': 'float32'},
      'output': {'name': artifacts.OUTPUT_NAME, 'shape': ['N', info.num_classes],
                 'dtype': 'float32'},
      'how_to_load': load,
      'onnx_opset': ONNX_OPSET if fmt == 'onnx' else None,
      'class_names': list(info.class_names),
      'num_classes': info.num_classes,
      'grid_shape': [h, w],
      'channel_order': 'frames are (row, column) grids; a row-major flattening is the '
                       'default channel order of hdsemg_jax.streaming',
      # The filter chain, its mode and the sampling rate: what a live decoder applies
      # (causally) before the model sees a frame.
      'conditioning': info.conditioning.as_dict(),
      'fold': info.fold,
      'seed': info.seed,
      'model': {'name': info.model, 'kwargs': info.model_kwargs},
      'dataset': info.dataset,
      'dataset_version': info.dataset_version,
      'parity': parity.as_dict(),
      'provenance': {
          **(source or {}),
          **provenance.git_state(),
          'versions': provenance.versions(_EXTRA_PACKAGES),
          'exported_at': datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec='seconds'),
      },
  }


def _publish(staging: str, out_dir: str, names: Sequence[str]) -> None:
  """Moves the staged files into ``out_dir``; the last name (the JSON) goes in last."""
  if not os.path.exists(out_dir):
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's folder is private; the output should not be.
    os.rename(staging, out_dir)  # Atomic: the folder appears complete or not at all.
    return
  # An existing folder: drop the old JSON first, so that a kill in between leaves an
  # artifact without its JSON (refused as unfinished), never a JSON describing other bytes.
  json_name = names[-1]
  if os.path.exists(os.path.join(out_dir, json_name)):
    os.remove(os.path.join(out_dir, json_name))
  for name in names:
    os.replace(os.path.join(staging, name), os.path.join(out_dir, name))


def export_model(model: ExportableModel, out_dir: str, fmt: str, parity_frames: np.ndarray, *,
                 atol: float = DEFAULT_ATOL, parity_source: str = 'given frames',
                 source: dict[str, Any] | None = None,
                 platforms: Sequence[str] | None = None) -> ExportResult:
  """Exports ``model`` (an `hdsemg_jax.saved_model.Model`) into ``out_dir`` as ``fmt``.

  Args:
    model: the model; its ``logits_fn()`` is what is exported.
    out_dir: the output folder (created; files of another export there are replaced).
    fmt: ``'onnx'`` or ``'stablehlo'``.
    parity_frames: frames ``(N, H, W)`` the artifact must reproduce the model on.
    atol: the largest absolute logit difference allowed.
    parity_source: where the parity frames come from, for the JSON.
    source: provenance of the model (e.g. its run folder), for the JSON.
    platforms: StableHLO only: `jax.export` platforms (default: this machine's).

  Returns:
    The paths written and the parity check.

  Raises:
    ParityError: the artifact read back does not reproduce the model; nothing written.
    ExportError: the model could not be converted (the converter's error attached).
  """
  if fmt not in FORMATS:
    raise ValueError(f'format {fmt!r} is not known (known: {", ".join(FORMATS)}).')
  frames = np.asarray(parity_frames, np.float32)
  grid_shape = tuple(model.info.grid_shape)
  if frames.ndim != 3 or frames.shape[1:] != grid_shape or not len(frames):
    raise ValueError(f'parity frames must have shape (N >= 1, {grid_shape[0]}, '
                     f'{grid_shape[1]}); got {frames.shape}.')
  fn = artifact_function(model)
  try:
    if fmt == 'onnx':
      data = onnx_bytes(fn, grid_shape, model_name=f'{model.info.model}_{model.info.fold}'
                                                   f'_seed{model.info.seed}')
    else:
      data = stablehlo_bytes(fn, grid_shape, platforms)
  except ImportError:
    raise  # An export extra is missing: its message says which requirements to install.
  except Exception as e:  # The converters raise many types; all mean the same here.
    raise ExportError(f'converting the model to {fmt} failed: {type(e).__name__}: {e}') from e
  artifact_name = ARTIFACT_BASENAME + artifacts.EXTENSIONS[fmt]
  json_name = os.path.basename(artifacts.metadata_path(artifact_name))
  out_dir = os.path.abspath(out_dir)
  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(out_dir)}.export-', dir=parent)
  try:
    artifact_path = os.path.join(staging, artifact_name)
    with open(artifact_path, 'wb') as f:
      f.write(data)
    # What is checked is what a consumer will load: the bytes read back from disk.
    with open(artifact_path, 'rb') as f:
      logits = artifacts.load_bytes(fmt, f.read())(frames)
    parity = check_parity(reference_logits(model, frames), logits, atol, parity_source)
    if not parity.ok:
      raise ParityError(
          f'the {fmt} export of fold {model.info.fold} seed {model.info.seed} does not '
          f'reproduce the model on {parity.frames} frames ({parity_source}): max |logit '
          f'difference| {parity.max_abs_logit_diff:.3g} (allowed {atol:g}), argmax differs on '
          f'{parity.argmax_mismatches} frame(s); nothing was written to {out_dir}.')
    results.write_json(os.path.join(staging, json_name),
                       describe(model, fmt, artifact_name, data, parity, source))
    _publish(staging, out_dir, [artifact_name, json_name])
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return ExportResult(artifact=os.path.join(out_dir, artifact_name),
                      metadata=os.path.join(out_dir, json_name), parity=parity)

"""Loading exported models: an ONNX Runtime session or a deserialized StableHLO module.

  artifact = artifacts.load_artifact('export/model.onnx')     # or 'export/model.stablehlo'
  logits = artifact.logits(frames)                          # (N, H, W) float32 -> (N, G)
  classes = artifact.classify(frames)                       # (N,) int32
  artifact.metadata['class_names']                          # the JSON beside the file

Neither format needs this project to run; this module only spares the caller the
session options and the padding. Without it:

  onnxruntime.InferenceSession('model.onnx').run(['logits'], {'frames': frames})[0]
  jax.export.deserialize(open('model.stablehlo', 'rb').read()).call(frames)

An artifact whose JSON is missing is an unfinished export and is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from typing import Any, Callable

import numpy as np

from hdsemg_jax.preprocessing.filters import Conditioning
from hdsemg_jax.reporting import results

EXTRAS_FILE = 'requirements-export.txt'


def import_extra(module: str) -> Any:
  """``import module`` for an export extra; its absence says which requirements to install."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise ImportError(f'{module} is not installed: exported models need the export extras; '
                      f'install them with pip install -r {EXTRAS_FILE} (with the constraints '
                      f'file of your Python) ({e}).') from None


def padded_batch_size(n: int, max_batch: int) -> int:
  """The padded batch size of ``n`` frames: the next power of two, at most ``max_batch``.

  Streams of chunks of varying size then run a handful of compiled shapes.
  """
  return min(1 << max(n - 1, 0).bit_length(), max_batch)


FORMATS = ('onnx', 'stablehlo')
EXTENSIONS = {'onnx': '.onnx', 'stablehlo': '.stablehlo'}
INPUT_NAME = 'frames'
OUTPUT_NAME = 'logits'
METADATA_SUFFIX = '.json'


class ArtifactError(ValueError):
  """An exported model that cannot be used: missing, unfinished, altered or of unknown format."""


def metadata_path(artifact_path: str) -> str:
  """The JSON description written beside ``artifact_path``."""
  return artifact_path + METADATA_SUFFIX


def format_of(path: str) -> str:
  for fmt, ext in EXTENSIONS.items():
    if path.endswith(ext):
      return fmt
  raise ArtifactError(f'{path}: not an exported model (expected a name ending in '
                      f'{" or ".join(EXTENSIONS.values())}).')


def read_metadata(artifact_path: str) -> dict[str, Any]:
  """The JSON beside an exported model."""
  path = metadata_path(artifact_path)
  if not os.path.exists(path):
    raise ArtifactError(f'{artifact_path}: no {os.path.basename(path)} beside it, so the export '
                        'is unfinished or not one of this project; export again.')
  try:
    return results.read_json(path, 'the export description')
  except ValueError as e:
    raise ArtifactError(str(e)) from None


def conditioning(metadata: dict[str, Any]) -> Conditioning:
  """How an exported model's input must be conditioned, from its JSON."""
  if 'conditioning' in metadata:
    return Conditioning.from_dict(metadata['conditioning'])
  # Exported before the conditioning was one object.
  return Conditioning(tuple(metadata.get('filters') or ()),
                      metadata.get('filter_mode', 'zero_phase'), metadata.get('sampling_rate_hz'))


def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def onnx_session(model: str | bytes, threads: int = 1) -> Any:
  """An ONNX Runtime CPU session tuned for small batches.

  One intra-op thread and sequential execution: a frame of this network is far
  too small for a thread pool to pay off (measured in ``experiments/latency.py``),
  and it leaves the other cores to the rest of the pipeline. All graph
  optimizations are on; warnings (jax2onnx's intermediate shape hints) are muted.
  """
  ort = import_extra('onnxruntime')
  options = ort.SessionOptions()
  options.intra_op_num_threads = int(threads)
  options.inter_op_num_threads = 1
  options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
  options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  options.log_severity_level = 3
  return ort.InferenceSession(model, sess_options=options, providers=['CPUExecutionProvider'])


def onnx_logits(model: str | bytes, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
  """``frames -> logits`` of an ONNX model (a path or its bytes), any batch size."""
  session = onnx_session(model, threads)

  def logits(frames: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(frames, np.float32)
    return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

  return logits


def stablehlo_logits(data: bytes, max_batch: int = 1024) -> Callable[[np.ndarray], np.ndarray]:
  """``frames -> logits`` of a serialized `jax.export` module, any batch size.

  The module has a symbolic batch dimension; each concrete size compiles once,
  so batches are padded to the next power of two (at most ``max_batch``, longer
  inputs in slices) to keep the compilations few.
  """
  import jax
  from jax import export

  exported = export.deserialize(bytearray(data))
  call = jax.jit(exported.call)

  def logits(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, np.float32)
    out = []
    for start in range(0, len(frames), max_batch):
      part = frames[start:start + max_batch]
      size = padded_batch_size(len(part), max_batch)
      padded = np.zeros((size, *part.shape[1:]), np.float32)
      padded[:len(part)] = part
      out.append(np.asarray(call(padded))[:len(part)])
    if not out:
      return np.zeros((0, *exported.out_avals[0].shape[1:]), np.float32)
    return np.concatenate(out)

  return logits


@dataclasses.dataclass
class Artifact:
  """An exported model ready to predict."""
  path: str
  format: str
  metadata: dict[str, Any]
  logits: Callable[[np.ndarray], np.ndarray]

  def classify(self, frames: np.ndarray) -> np.ndarray:
    """The predicted class of each frame (N, H, W)."""
    return np.argmax(self.logits(frames), axis=-1).astype(np.int32)


def load_bytes(fmt: str, data: bytes, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
  """``frames -> logits`` of an artifact's bytes."""
  if fmt == 'onnx':
    return onnx_logits(data, threads)
  if fmt == 'stablehlo':
    return stablehlo_logits(data)
  raise ArtifactError(f'unknown export format {fmt!r} (known: {", ".join(FORMATS)}).')


def load_artifact(path: str, *, threads: int = 1) -> Artifact:
  """The exported model at ``path`` (``.onnx`` or ``.stablehlo``), checked against its JSON.

  Raises:
    ArtifactError: no such file, no JSON beside it, or the file's sha256 differs
      from the one recorded at export (the file was altered or replaced).
  """
  fmt = format_of(path)
  if not os.path.exists(path):
    raise ArtifactError(f'{path}: no such exported model.')
  metadata = read_metadata(path)
  with open(path, 'rb') as f:
    data = f.read()
  if metadata.get('sha256') not in (None, sha256(data)):
    raise ArtifactError(f'{path}: its sha256 differs from the one recorded in '
                        f'{os.path.basename(metadata_path(path))}; the file was altered after '
                        'export.')
  return Artifact(path=path, format=fmt, metadata=metadata, logits=load_bytes(fmt, data, threads))

"""A streaming decoder: raw sample chunks in, a gesture decision per frame out.

  decoder = streaming.Decoder.from_model(hdsemg_jax.load_model(run_dir, fold, seed), window=150)
  decoder = streaming.Decoder.from_artifact('export/model.onnx', window=150)  # ONNX Runtime
  for chunk in stream:              # (k, C) float32/float64: k >= 1 samples of C channels
    out = decoder.push(chunk)       # out.classes (k,): each frame's class; out.votes (k,)
    act_on(out.votes[-1])

Each chunk goes through four steps, and only a chunk that passes them all changes
the decoder's state:

1. Checked: a `numpy.ndarray` of float32 or float64 (else `ChunkDtypeError`: an
   integer ADC count needs a scale the decoder does not know), two-dimensional
   ``(k, C)`` with C the grid's electrode count (else `ChunkShapeError`; k = 0 is
   allowed and returns empty decisions), every value finite (else
   `NonFiniteChunkError`: one NaN would poison the filter state for good).
   Non-contiguous arrays (a strided view of a larger buffer) are accepted: the
   chunk is copied into float64 for filtering anyway. All three errors subclass
   `ChunkError`, a ValueError, and leave the decoder exactly as it was.
2. Arranged on the grid: channels come in the recording's order, by default
   row-major over the grid (channel ``c`` at row ``c // W``, column ``c % W``), or
   at the grid positions ``channel_map[c] = (row, column)``.
3. Conditioned by the causal form of the model's ``dataset.filters``
   (`hdsemg_jax.preprocessing.filters.CausalChain`), whose state runs on across
   chunks: feeding a recording in chunks of any size gives the frames of
   ``apply_filters(..., mode='causal')`` on the whole recording, bit for bit. The
   decoder always filters causally; a model trained with ``filter_mode=zero_phase``
   sees frames conditioned differently from its training frames (what
   `hdsemg_jax.evaluation.online` measures).
4. Classified, one class per frame, then voted: the decision at a frame is the
   most frequent class among the last ``window`` frames (fewer at the start of the
   stream: all frames so far), ties going to the smallest class index, as in the
   offline vote (`hdsemg_jax.evaluation.voting`).

The model runs in JAX (`from_model`: a jit-compiled logits function, batches
padded to a power of two so that only a few shapes compile), in ONNX Runtime or
from a StableHLO artifact (`from_artifact`, files written by
`hdsemg_jax.deployment.export`), or is any function ``frames (N, H, W) float32 ->
classes (N,)`` (the constructor).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from hdsemg_jax.deployment import artifacts  # Imports onnxruntime only when a model asks.
from hdsemg_jax.preprocessing import filters as filters_lib

Classify = Callable[[np.ndarray], np.ndarray]
ACCEPTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ChunkError(ValueError):
  """A chunk the decoder refuses; its state is unchanged."""


class ChunkShapeError(ChunkError):
  """The chunk is not ``(samples, channels)`` with the grid's number of channels."""


class ChunkDtypeError(ChunkError):
  """The chunk is not a float32 or float64 `numpy.ndarray`."""


class NonFiniteChunkError(ChunkError):
  """The chunk holds NaN or infinite values."""


@dataclasses.dataclass(frozen=True)
class Decisions:
  """What one chunk of k samples yields: one entry per frame, in time order."""
  classes: np.ndarray  # (k,) int32: each frame's predicted class.
  votes: np.ndarray  # (k,) int32: the majority class of the last `window` frames at each frame.


class TrailingVote:
  """The majority class over the last ``window`` classes, updated as classes arrive.

  At every new class it gives the most frequent class among the last ``window``
  (all so far while fewer have arrived), ties to the smallest class index. The
  state is the last ``window - 1`` classes and their counts; `votes` is pure,
  `push` also keeps the state.
  """

  # Chunks up to this many classes update the counts class by class (a few
  # microseconds a frame); longer ones go through one cumulative sum.
  _INCREMENTAL_MAX = 32

  def __init__(self, window: int, num_classes: int):
    if int(window) < 1:
      raise ValueError(f'the vote window must be positive; got {window}.')
    self.window, self.num_classes = int(window), int(num_classes)
    self.reset()

  @property
  def history(self) -> np.ndarray:
    """The last ``window - 1`` classes (fewer at the start), oldest first."""
    return self.state[0]

  def votes(self, classes: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(votes of ``classes`` after ``state`` (default the current one), the state after them)."""
    history, counts = self.state if state is None else state
    classes = np.asarray(classes, np.int32).reshape(-1)
    seq = np.concatenate([history, classes])
    keep = self.window - 1
    new_history = seq[max(seq.size - keep, 0):].copy()
    if classes.size <= self._INCREMENTAL_MAX:
      counts = counts.copy()
      votes = np.empty(classes.size, np.int32)
      for i, c in enumerate(classes.tolist()):
        at = history.size + i
        counts[c] += 1  # Now the counts of the window ending at frame ``at``.
        # argmax takes the first of equal counts: the smallest class, as the offline vote does.
        votes[i] = counts.argmax()
        if at >= keep:
          counts[seq[at - keep]] -= 1  # Its oldest frame leaves the next window.
      return votes, (new_history, counts)
    cumulative = np.zeros((seq.size + 1, self.num_classes), np.int32)
    np.cumsum(np.eye(self.num_classes, dtype=np.int32)[seq], axis=0, out=cumulative[1:])
    ends = np.arange(history.size + 1, seq.size + 1)
    starts = np.maximum(ends - self.window, 0)
    votes = np.argmax(cumulative[ends] - cumulative[starts], axis=1).astype(np.int32)
    counts = np.bincount(new_history, minlength=self.num_classes).astype(np.int64)
    return votes, (new_history, counts)

  def push(self, classes: np.ndarray) -> np.ndarray:
    votes, self.state = self.votes(classes)
    return votes

  def reset(self) -> None:
    self.state = (np.zeros((0,), np.int32), np.zeros((self.num_classes,), np.int64))


def _grid_order(channel_map: Sequence[Sequence[int]] | np.ndarray | None,
                grid_shape: tuple[int, int]) -> np.ndarray | None:
  """Channel indices in row-major grid order (None: the channels already are)."""
  if channel_map is None:
    return None
  rows, cols = grid_shape
  positions = np.asarray(channel_map)
  if positions.shape != (rows * cols, 2) or not np.issubdtype(positions.dtype, np.integer):
    raise ValueError(f'channel_map must give one (row, column) pair of integers per channel, '
                     f'{rows * cols} in all; got an array of shape {positions.shape}.')
  if (positions < 0).any() or (positions[:, 0] >= rows).any() or (positions[:, 1] >= cols).any():
    raise ValueError(f'channel_map has a position outside the {rows} x {cols} grid.')
  flat = positions[:, 0] * cols + positions[:, 1]
  if np.unique(flat).size != flat.size:
    raise ValueError('channel_map puts two channels at the same grid position.')
  order = np.empty_like(flat)
  order[flat] = np.arange(flat.size)  # The channel at each grid position.
  return order


class Decoder:
  """Causal filtering, per-frame classification and a trailing vote over a sample stream."""

  def __init__(self, classify: Classify, *, grid_shape: Sequence[int], num_classes: int,
               sampling_rate_hz: float | None,
               filters: filters_lib.Conditioning | Iterable[str] | str | None = (),
               window: int = 1, channel_map: Sequence[Sequence[int]] | np.ndarray | None = None,
               class_names: Sequence[str] | None = None):
    """Builds a decoder around ``classify``.

    Args:
      classify: frames ``(N, H, W)`` float32 -> classes ``(N,)``.
      grid_shape: ``(H, W)``; a chunk has ``H * W`` channels.
      num_classes: classes the model tells apart (for the vote).
      sampling_rate_hz: the stream's sampling rate (needed when ``filters`` is not empty).
      filters: the conditioning the model was trained with (a `Conditioning`, whose
        rate is used where ``sampling_rate_hz`` is None, or its spec strings); run causally.
      window: frames per vote (1: each frame's own class).
      channel_map: each channel's ``(row, column)`` on the grid; default row-major.
      class_names: for `class_name`.

    Raises:
      ValueError: a bad filter chain, sampling rate, window or channel map.
    """
    self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
    self.num_channels = self.grid_shape[0] * self.grid_shape[1]
    self.num_classes = int(num_classes)
    self.class_names = tuple(class_names) if class_names is not None else None
    self._classify = classify
    if isinstance(filters, filters_lib.Conditioning):
      specs = list(filters.chain)  # Parsed once, by whoever made the conditioning.
      if sampling_rate_hz is None:
        sampling_rate_hz = filters.sampling_rate_hz
    else:
      specs = filters_lib.parse_filter_chain(filters)
    if specs and sampling_rate_hz is None:
      raise ValueError(f'filters {[f.spec for f in specs]} need the sampling rate; pass '
                       'sampling_rate_hz.')
    self.sampling_rate_hz = None if sampling_rate_hz is None else float(sampling_rate_hz)
    self._chain = filters_lib.CausalChain(specs, self.sampling_rate_hz or 1.0)
    self._vote = TrailingVote(window, self.num_classes)
    self._order = _grid_order(channel_map, self.grid_shape)
    self.frames_seen = 0

  @property
  def window(self) -> int:
    return self._vote.window

  @property
  def filters(self) -> tuple[str, ...]:
    return self._chain.specs

  @classmethod
  def from_model(cls, model: Any, *, window: int = 1,
                 channel_map: Sequence[Sequence[int]] | np.ndarray | None = None,
                 filters: Iterable[str] | str | None = None,
                 sampling_rate_hz: float | None = None,
                 max_batch: int | None = None) -> 'Decoder':
    """A decoder running an `hdsemg_jax.saved_model.Model` in JAX.

    ``filters`` and ``sampling_rate_hz`` default to those the model was trained
    with (``model.info``); ``max_batch`` (default the model's evaluation batch
    size) bounds the frames per compiled call.
    """
    info = model.info
    return cls(jax_classifier(model, max_batch), grid_shape=info.grid_shape,
               num_classes=info.num_classes, sampling_rate_hz=sampling_rate_hz,
               filters=info.conditioning if filters is None else filters, window=window,
               channel_map=channel_map, class_names=info.class_names)

  @classmethod
  def from_artifact(cls, path: str, *, window: int = 1,
                    channel_map: Sequence[Sequence[int]] | np.ndarray | None = None,
                    threads: int = 1) -> 'Decoder':
    """A decoder running an exported ``.onnx`` (ONNX Runtime) or ``.stablehlo`` model.

    Class names, grid, filters and sampling rate come from the JSON written beside
    it by `hdsemg_jax.deployment.export`; ``threads`` is ONNX Runtime's intra-op
    thread count.
    """
    artifact = artifacts.load_artifact(path, threads=threads)
    meta = artifact.metadata
    return cls(artifact.classify, grid_shape=meta['grid_shape'],
               num_classes=meta['num_classes'], sampling_rate_hz=None,
               filters=artifacts.conditioning(meta), window=window, channel_map=channel_map,
               class_names=meta['class_names'])

  def check(self, chunk: Any) -> None:
    """Raises the `ChunkError` that `push` would raise for ``chunk``, if any."""
    if not isinstance(chunk, np.ndarray) or chunk.dtype not in ACCEPTED_DTYPES:
      got = f'dtype {chunk.dtype}' if isinstance(chunk, np.ndarray) else type(chunk).__name__
      raise ChunkDtypeError(f'a chunk must be a numpy.ndarray of float32 or float64; got {got}.')
    if chunk.ndim != 2 or chunk.shape[1] != self.num_channels:
      raise ChunkShapeError(
          f'a chunk must have shape (samples, {self.num_channels}) for the '
          f'{self.grid_shape[0]} x {self.grid_shape[1]} grid; got {chunk.shape}.')
    if not np.isfinite(chunk).all():
      bad = np.argwhere(~np.isfinite(chunk))[0]
      raise NonFiniteChunkError(f'the chunk holds a non-finite value ({chunk[tuple(bad)]}) at '
                                f'sample {bad[0]}, channel {bad[1]}; the chunk was ignored.')

  def frames(self, chunk: np.ndarray, filter_state: Any = None) -> tuple[np.ndarray, Any]:
    """(the chunk's conditioned frames (k, H, W) float32, the filter state after it); pure."""
    if self._order is not None:
      chunk = chunk[:, self._order]
    x = np.asarray(chunk, np.float64).reshape(len(chunk), *self.grid_shape)
    y, state = self._chain.run(x, filter_state)
    return y.astype(np.float32), state

  def push(self, chunk: np.ndarray) -> Decisions:
    """Decodes the next ``k`` samples; see the module docstring for what is checked."""
    self.check(chunk)
    frames, filter_state = self.frames(chunk, self._chain.state)
    if len(frames):
      classes = np.asarray(self._classify(frames)).astype(np.int32).reshape(-1)
      if classes.shape != (len(frames),):
        raise RuntimeError(f'the classifier returned {classes.shape} classes for '
                           f'{len(frames)} frames.')
    else:
      classes = np.zeros((0,), np.int32)
    votes, vote_state = self._vote.votes(classes)
    # Nothing above touched the state: a chunk that raised anywhere leaves no trace.
    self._chain.state, self._vote.state = filter_state, vote_state
    self.frames_seen += len(frames)
    return Decisions(classes=classes, votes=votes)

  def reset(self) -> None:
    """Forgets the stream so far (filter state and vote history): a new recording starts."""
    self._chain.reset()
    self._vote.reset()
    self.frames_seen = 0

  def class_name(self, index: int) -> str:
    return self.class_names[index] if self.class_names else str(index)


def jax_classifier(model: Any, max_batch: int | None = None) -> Classify:
  """``frames -> classes`` of an `hdsemg_jax.saved_model.Model`, compiled per padded batch size.

  Frames are padded to the next power of two (at most ``max_batch``, default the
  model's evaluation batch size; longer inputs run in slices), so a stream of
  chunks of varying size compiles only a handful of shapes.
  """
  import jax
  import jax.numpy as jnp

  logits_fn = model.logits_fn()
  classes_fn = jax.jit(lambda x: jnp.argmax(logits_fn(x), axis=-1).astype(jnp.int32))
  max_batch = int(max_batch or model.info.eval_batch_size)

  def classify(frames: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(frames), max_batch):
      part = frames[start:start + max_batch]
      size = artifacts.padded_batch_size(len(part), max_batch)
      if size != len(part):
        part = np.concatenate([part, np.zeros((size - len(part), *part.shape[1:]), part.dtype)])
      out.append(np.asarray(classes_fn(part))[:min(max_batch, len(frames) - start)])
    return np.concatenate(out) if out else np.zeros((0,), np.int32)

  return classify

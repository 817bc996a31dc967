r"""Exports the saved model of a run's fold and seed to ONNX or StableHLO.

  python -m experiments.export RUN_DIR --fold=S01-s1 --seed=0 --format=onnx --out=export/
  python -m experiments.export RUN_DIR --fold=S01-s1 --seed=0 --format=stablehlo --out=export/

Writes ``export/model.onnx`` (or ``model.stablehlo``) and its JSON description
(``model.onnx.json``: classes, grid, sampling rate, filters, fold, seed,
provenance, parity). Before anything is written the artifact is run by its own
runtime on real frames of the fold's test set and compared with the JAX model;
if the largest logit difference exceeds --atol or any argmax differs, the
command prints why and exits with status 1, leaving --out untouched. Needs the
extras of requirements-export.txt (ONNX: jax2onnx, onnx, onnxruntime; StableHLO:
flatbuffers); without them it says so and exits with status 2. See
`hdsemg_jax.deployment.export` for the library calls.
"""

from __future__ import annotations

from absl import flags

from experiments import cli

_FOLD = flags.DEFINE_string('fold', None, 'Fold id, as in results.jsonl (e.g. S01-s1).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the saved model.')
_FORMAT = flags.DEFINE_enum('format', 'onnx', ['onnx', 'stablehlo'], 'Artifact format.')
_OUT = flags.DEFINE_string('out', None, 'Output folder (created; an older export of the same '
                           'format there is replaced).')
_ATOL = flags.DEFINE_float('atol', None, 'Largest absolute logit difference allowed against '
                           'the JAX model (default: the library\'s, 1e-4).')
_MAX_FRAMES = flags.DEFINE_integer('max_parity_frames', 2048,
                                   'Test frames the parity check runs on (evenly spread).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Where the dataset is prepared, if not where '
                                'the run had it (config.json dataset.data_dir).')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', None, 'The dataset\'s manual download, if not '
                                  'where the run had it.')
_PLATFORMS = flags.DEFINE_list('platforms', None, 'StableHLO only: platforms to lower for '
                               '(e.g. cpu,cuda); default this machine\'s.')
flags.mark_flags_as_required(['fold', 'out'])


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise cli.UsageError('give exactly one run directory (the experiment\'s --workdir).')
  run_dir = argv[1]
  from hdsemg_jax import process_setup  # After flags: JAX is slow to import.
  from hdsemg_jax.deployment import export
  from hdsemg_jax.run import export_run
  process_setup.quiet_library_logs()
  kwargs = {} if _ATOL.value is None else {'atol': _ATOL.value}
  if _ATOL.value is not None and _ATOL.value < 0:
    raise cli.UsageError(f'--atol must be >= 0; got {_ATOL.value}.')
  try:
    result = export_run.export_run(run_dir, _FOLD.value, _SEED.value, _FORMAT.value, _OUT.value,
                                   max_parity_frames=_MAX_FRAMES.value, data_dir=_DATA_DIR.value,
                                   manual_dir=_MANUAL_DIR.value, platforms=_PLATFORMS.value,
                                   **kwargs)
  except ImportError as e:  # The export extras are not installed: the message says which.
    cli.fail(f'export failed: {e}', cli.USAGE_EXIT)
  except (export.ExportError, ValueError) as e:
    cli.fail(f'export failed: {"parity check: " if isinstance(e, export.ParityError) else ""}'
             f'{e}', cli.FAILED_EXIT)
  p = result.parity
  print(f'wrote {result.artifact} and {result.metadata}\nparity on {p.frames} test frames: max '
        f'|logit difference| {p.max_abs_logit_diff:.3g} (allowed {p.atol:g}), argmax equal on all')


if __name__ == '__main__':
  cli.run(main)

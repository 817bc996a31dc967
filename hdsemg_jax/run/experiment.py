"""One experiment: a dataset, a protocol's folds, a model, several seeds.

``train_and_evaluate(config, workdir)`` resolves the config once
(`run.setup.resolve`: typed settings, data, folds; a refused config writes
nothing), trains a model per fold and seed on the fold's training
trials with `run.recipe` (train or pre-train, fine-tune, align, AdaBN, as the
adaptation and the protocol ask), scores the final model on its test trials
(`run.rows`; test data never selects anything), and writes ``config.json``,
``results.jsonl``, ``results.md`` and the figures into ``workdir``
(`hdsemg_jax.workdir` has the layout).

Runs are preemption-safe: training states are checkpointed, every finished model
is kept, and rerunning the same command on the same workdir skips the (fold, seed)
pairs whose rows are already in ``results.jsonl`` and continues the others from
their latest checkpoint; the results equal those of an uninterrupted run
(``train_seconds`` aside). A workdir written with another config is refused unless
``allow_config_change`` is set, and a workdir that another live run holds is
refused at once (`run_lock`).

With ``config.seed_parallel`` the seeds of a fold train together in one vmapped
program, checkpointed as one stacked state; a resumed fold runs all its seeds
again from that checkpoint (a finished one restores at its final step) and scores
those without a row; ``train_seconds`` is then the time of all the fold's seeds
together. On several hosts, process 0 writes the results.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import jax
import ml_collections
from absl import logging

from hdsemg_jax import checkpointing
from hdsemg_jax import workdir as workdir_lib
from hdsemg_jax.evaluation import robustness
from hdsemg_jax.protocols import Fold
from hdsemg_jax.reporting import (benchmark, compare, curves, document, plots, results,
                                  robustness_plot, tables)
from hdsemg_jax.run import lock as run_lock
from hdsemg_jax.run import recipe
from hdsemg_jax.run import rows as rows_lib
from hdsemg_jax.run import setup as run_setup
from hdsemg_jax.run.setup import RunSetup

SHIFT_PLOT = 'shift_robustness.png'


def table_metrics(vote_windows: tuple[int, ...]) -> tuple[str, ...]:
  """What results.md tabulates: per-frame accuracy and the vote over the largest window (a
  run without 150 among ``eval.vote_windows`` once failed here, after all its folds)."""
  return ('frame_accuracy', f'vote_accuracy/{max(vote_windows)}')


def _is_primary() -> bool:
  # On several hosts every process runs the same program; one writes the files.
  return jax.process_index() == 0


class _Outputs:
  """Where one fold's seeds checkpoint and write curves (nowhere without a workdir)."""

  def __init__(self, workdir: str | None, fold: Fold, seeds: Sequence[int]):
    self.workdir, self.fold, self.seeds = workdir, fold, list(seeds)
    writes = workdir is not None and _is_primary()
    self.curves = {s: curves.CurveWriter(
        os.path.join(workdir, workdir_lib.CURVES_FILE),
        workdir_lib.pair_dir(workdir, workdir_lib.TENSORBOARD_DIR, fold.id, s), fold.id, s)
        for s in self.seeds} if writes else {}

  def checkpoints_for(self, phase: str, key: str) -> checkpointing.TrainCheckpoints | None:
    if self.workdir is None:
      return None
    kind = workdir_lib.CHECKPOINT_DIR if phase == 'train' else workdir_lib.FINETUNE_CHECKPOINT_DIR
    where = (workdir_lib.pair_dir(self.workdir, kind, key, self.seeds[0]) if len(self.seeds) == 1
             else workdir_lib.group_dir(self.workdir, kind, key, self.seeds))
    return checkpointing.TrainCheckpoints(where)

  def on_epoch_for(self, seed: int, phase: str):
    return self.curves[seed].on_epoch(phase) if seed in self.curves else None

  def close(self) -> None:
    for writer in self.curves.values():
      writer.close()


def train_seeds(setup: RunSetup, fold: Fold, seeds: Sequence[int],
                workdir: str | None = None) -> recipe.Trained:
  """`recipe.train_fold` with checkpoints and curves in ``workdir`` (if given)."""
  outputs = _Outputs(workdir, fold, seeds)
  try:
    return recipe.train_fold(setup, fold, seeds, checkpoints_for=outputs.checkpoints_for,
                             on_epoch_for=outputs.on_epoch_for if outputs.curves else None)
  finally:
    outputs.close()


def _model_dir(workdir: str | None, fold: Fold, seed: int) -> str | None:
  """Where the scored model is saved: in the workdir, by the writing process only."""
  return workdir_lib.model_dir(workdir, fold.id, seed) if workdir and _is_primary() else None


def run_fold(setup: RunSetup, fold: Fold, workdir: str | None = None,
             skip: Sequence[int] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
  """``(seed, row)`` of every seed of one fold not in ``skip``, as each is scored.

  With ``config.seed_parallel``, all seeds (``skip`` included, so that their
  shared checkpoint is found; a finished one restores at its final step) train
  together in one vmapped program first; otherwise each trains in turn.
  """
  seeds = list(setup.settings.run_seeds)
  pending = [s for s in seeds if s not in set(skip)]
  if not pending:
    return
  if setup.settings.model.is_classical:
    yield seeds[0], rows_lib.classical_row(setup, fold)
    return
  if setup.settings.seed_parallel and len(seeds) > 1:
    trained = train_seeds(setup, fold, seeds, workdir)
    for seed in pending:
      yield seed, rows_lib.score_seed(setup, fold, seed, trained, seeds.index(seed),
                                      _model_dir(workdir, fold, seed))
    return
  for seed in pending:
    trained = train_seeds(setup, fold, [seed], workdir)
    yield seed, rows_lib.score_seed(setup, fold, seed, trained, 0,
                                    _model_dir(workdir, fold, seed))


def _title(setup: RunSetup) -> str:
  return f'{setup.settings.model.name} on {setup.spec.name}, {setup.settings.protocol.name}'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False) -> list[dict[str, Any]]:
  """Runs every configured fold and seed not already finished; returns the results rows.

  The config is checked and resolved first (`run_setup.resolve`, on a copy): the
  resolved device values are what ``config.json`` records and what a resumed run
  is compared against. A config the run refuses raises `hdsemg_jax.config.ConfigError`
  before anything is written.
  """
  return run(run_setup.resolve(config), workdir, allow_config_change=allow_config_change)


def run(setup: RunSetup, workdir: str, *,
        allow_config_change: bool = False) -> list[dict[str, Any]]:
  """`train_and_evaluate` of a config already resolved (`run_setup.resolve`)."""
  workdir_lib.check_writable(workdir)
  logging.info('parallel=%s on %d device(s) (%d process(es)), num_cpu_devices=%d, '
               'seed_parallel=%s', setup.devices.parallel, setup.devices.num_devices,
               setup.devices.num_processes, setup.devices.num_cpu_devices,
               setup.settings.seed_parallel)
  # Every write to the workdir happens under the lock (per host; see run_lock), which
  # creates the workdir.
  with run_lock.hold(workdir, process_index=jax.process_index()):
    done = workdir_lib.open_run(workdir, setup.config.to_dict(), allow_config_change)
    rows = _run_folds(setup, workdir, done)
    table = tables.run_report(rows, title=_title(setup), synthetic=setup.spec.synthetic,
                              metrics=table_metrics(setup.settings.eval.vote_windows))
    if _is_primary():
      _write_report(setup, rows, table, workdir)
  print(table)
  return rows


def _write_report(setup: RunSetup, rows: Sequence[dict[str, Any]], table: str,
                  workdir: str) -> None:
  plots.write_plots(rows, workdir, _title(setup), class_names=setup.spec.class_names,
                    synthetic=setup.spec.synthetic, sampling_rate_hz=setup.spec.sampling_rate_hz)
  if all(r.get('shift_scores') for r in rows):
    robustness_plot.accuracy_vs_shift(
        robustness.mean_shift_scores(rows), os.path.join(workdir, SHIFT_PLOT),
        f'{_title(setup)}: accuracy against electrode shift\n(mean over folds and seeds)')
  _write_document(setup, rows, workdir)
  # Last: the table marks a finished run (`run.tasks.is_finished`).
  results.write_atomic(os.path.join(workdir, workdir_lib.TABLE_FILE), table)


def _write_document(setup: RunSetup, rows: Sequence[dict[str, Any]], workdir: str) -> None:
  # The run as one JSON document, in the schema of a benchmark's comparison.json.
  run = compare.Run(path=workdir, label=setup.settings.model.name,
                    config=setup.config.to_dict(), rows=list(rows))
  metric = f'decision_accuracy/{max(setup.settings.eval.vote_windows)}'
  try:
    combined = benchmark.combine_runs([run], metric, reference=None)
  except ValueError as e:  # Rows of several configs (--allow_config_change) may not combine.
    logging.warning('%s not written: %s', document.RUN_FILE, e)
    return
  document.write(document.document(combined, [run], _title(setup)),
                 os.path.join(workdir, document.RUN_FILE))


def _run_folds(setup: RunSetup, workdir: str,
               done: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
  rows: list[dict[str, Any]] = []
  seeds = list(setup.settings.run_seeds)
  total = len(setup.folds) * len(seeds)
  for fold in setup.folds:
    skip = [s for s in seeds if (fold.id, s) in done]
    fold_rows = {s: done[(fold.id, s)] for s in skip}
    for seed in skip:
      logging.info('[%d/%d] fold %s, seed %d: already in %s, skipped',
                   len(rows) + seeds.index(seed) + 1, total, fold.id, seed,
                   workdir_lib.RESULTS_FILE)
    if len(skip) < len(seeds):
      logging.info('[%d/%d] fold %s, seed(s) %s', len(rows) + 1, total, fold.id,
                   ', '.join(str(s) for s in seeds if s not in skip))
    for seed, row in run_fold(setup, fold, workdir, skip=skip):
      if _is_primary():
        results.append_row(workdir, row)
      fold_rows[seed] = row
      logging.info('fold %s seed %d: frame accuracy %.3f, vote accuracy %s', fold.id, seed,
                   row['frame_accuracy'], row['vote_accuracy'])
    rows.extend(fold_rows[s] for s in seeds)
  return rows

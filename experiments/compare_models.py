r"""The paper's comparison in one command: every model on every protocol, then one report.

  python -m experiments.compare_models --config=experiments/configs/compare_models.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/compare_flexemg
  python -m experiments.compare_models --config=experiments/configs/compare_models.py \
      --workdir=/tmp/suite --config.train.epochs=2 --config.seeds=0,1,2 \
      --config.suite.models=all_convnet,lda,chance --dry_run

Each run (protocol x model) goes to its own sub-workdir ``<workdir>/<protocol>/<model>``
(`experiments.suite`), so rerunning the command resumes where it stopped: finished
runs are skipped, partial ones continue. Then the combined report (rows protocol x
fold, a column per model, paired Wilcoxon tests of ``suite.reference`` against
every other model, costs) is printed and written to
``<workdir>/comparison.{md,csv,png,json}`` and ``report.html``.

Where the runs execute (`experiments.launch_flags`): one after another here (the
default); ``--workers=N`` local processes at once; or ``--executor=slurm``, one SLURM
job array of one task per run (``--fold_groups=N``: N per run), waiting for it
before the report (``--no_wait``: print the job id and return; rerun the command, or
``python -m experiments.report --combine <workdir>``, to report what has finished):

  python -m experiments.compare_models --config=experiments/configs/compare_models.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/compare_flexemg \
      --executor=slurm --slurm.partition=gpu --slurm.gpus_per_task=1 --slurm.time_min=120

Resubmitting submits only the tasks neither finished nor still queued.
``--dry_run`` checks every run's config as the run would (a bad value fails here,
naming the run and the key) and prints every run; it runs nothing.
``--keep_going`` runs the others when one fails and reports the finished ones; the
command then exits non-zero.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from experiments import cli, launch_flags

_CONFIG = config_flags.DEFINE_config_file('config', 'experiments/configs/compare_models.py',
                                          'Suite config file (experiments/configs/'
                                          'compare_models.py:DATASET).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Suite folder: one sub-workdir per run, and '
                               'the report.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print every run it would make, then exit.')
_KEEP_GOING = flags.DEFINE_bool('keep_going', False, 'Run the others when a run fails.')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments: {argv[1:]}')
  from experiments import suite
  outcome = suite.command(_CONFIG.value, _WORKDIR.value, dry_run=_DRY_RUN.value,
                          keep_going=_KEEP_GOING.value, commands=(cli.command_line(),))
  undone = launch_flags.report_outcome(outcome) if outcome else []
  if undone:
    cli.fail('unfinished:\n  ' + '\n  '.join(undone), cli.FAILED_EXIT)


if __name__ == '__main__':
  cli.run(main)

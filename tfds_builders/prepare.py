r"""Builds a dataset of this project as array_record files, without TensorFlow.

  python -m tfds_builders.prepare synthetic_hdsemg/small [--data_dir=DIR]
  python -m tfds_builders.prepare capgmyo/dba --manual_dir=DIR [--data_dir=DIR]

The same builders also work with `tfds build` when TensorFlow is installed.
Experiments call `prepare()` themselves, so running this by hand is optional.
"""

from __future__ import annotations

import importlib
import os
from typing import Sequence

import tensorflow_datasets as tfds

FILE_FORMAT = 'array_record'  # The only format TFDS writes and reads without TensorFlow.


class DatasetError(ValueError):
  """A dataset cannot be found, read or built; the message says why and what to do."""


def import_builder(name: str) -> None:
  """Imports (and so registers) the builder module of ``name`` (``'dataset/config'``)."""
  module = name.split('/')[0].split(':')[0]
  try:
    importlib.import_module(f'tfds_builders.{module}')
  except ModuleNotFoundError as e:
    if e.name != f'tfds_builders.{module}':
      raise
    known = sorted(
        entry for entry in os.listdir(os.path.dirname(__file__))
        if os.path.isfile(os.path.join(os.path.dirname(__file__), entry, '__init__.py')))
    raise DatasetError(
        f'dataset.name={name!r}: no builder named {module!r} in tfds_builders '
        f'(known: {", ".join(known)}).') from None


def prepare(name: str, data_dir: str | None = None,
            manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Returns the builder of ``name``, preparing its files first if needed."""
  import_builder(name)
  builder = tfds.builder(name, data_dir=data_dir, file_format=FILE_FORMAT)
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  builder.download_and_prepare(download_config=download_config, file_format=FILE_FORMAT)
  return builder


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError('usage: python -m tfds_builders.prepare DATASET/CONFIG '
                         '[--data_dir=DIR] [--manual_dir=DIR]')
  try:
    builder = prepare(argv[1], _DATA_DIR.value, _MANUAL_DIR.value)
  except DatasetError as e:
    raise SystemExit(f'error: {e}') from None
  print(f'{builder.info.full_name}: {builder.info.splits} in {builder.data_dir}')


if __name__ == '__main__':
  from absl import app, flags
  # Under `python -m` this file runs as `__main__`, a second copy of the module; builders raise
  # `tfds_builders.prepare.DatasetError`, so `main` must catch that class, not this copy's.
  from tfds_builders.prepare import DatasetError  # pylint: disable=g-import-not-at-top
  _DATA_DIR = flags.DEFINE_string('data_dir', None, 'Where TFDS keeps prepared datasets.')
  _MANUAL_DIR = flags.DEFINE_string('manual_dir', None, 'Folder holding manually downloaded files.')
  app.run(main)

r"""Writes the dummy manual_dir of the CapgMyo builder tests (fake values, never recordings).

  python tfds_builders/capgmyo/dummy_data/make_dummy_data.py OUT_DIR

The tests write it into a temporary folder themselves (tests/test_capgmyo_builder.py),
so nothing generated is committed here; run this to look at or debug the layout.
"""

import pathlib
import sys

# Run as a script: make the repository importable without installing it.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))

from tfds_builders.capgmyo import fake_data  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise SystemExit(f'usage: python {argv[0]} OUT_DIR')
  fake_data.write_dummy_data(argv[1])
  print(f'dummy CapgMyo copy written to {argv[1]}')


if __name__ == '__main__':
  main(sys.argv)

"""Number formatting shared by the run comparison (`compare`) and the benchmark (`benchmark`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from hdsemg_jax.reporting import tables


def pct(values: Sequence[float] | np.ndarray) -> str:
  """``mean ± sample std`` of accuracies in percent (`tables.mean_std`)."""
  return tables.mean_std([float(v) for v in values])


def p_value(p: float) -> str:
  """A test's p-value for a table: three significant digits; ``n/a`` where undefined (NaN)."""
  return 'n/a' if math.isnan(p) else f'{p:.3g}'


def stats_of(values: Sequence[float] | np.ndarray) -> list[Any]:
  """``[mean, sample std, count]`` for a CSV line; the std of a single value is NaN."""
  std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
  return [float(np.mean(values)), std, len(values)]


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
  """The lines of a Markdown table: the header, its rule, a line per row of ``body``."""
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(line) + ' |' for line in body]
  return lines

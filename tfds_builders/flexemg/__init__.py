"""flexemg: real HD-sEMG gesture recordings (Moin et al., ISCAS 2018), manual download."""

from tfds_builders.flexemg.flexemg_dataset_builder import Builder

__all__ = ['Builder']

"""Synthetic HD-sEMG gestures: the project's embedded default dataset."""

from tfds_builders.synthetic_hdsemg.synthetic_hdsemg_dataset_builder import Builder

__all__ = ['Builder']

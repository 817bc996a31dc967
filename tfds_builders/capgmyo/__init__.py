"""CapgMyo DB-a, DB-b and DB-c (preprocessed release), from a manual download."""

from tfds_builders.capgmyo.capgmyo_dataset_builder import Builder

__all__ = ['Builder']

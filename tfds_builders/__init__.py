"""TFDS builders for HD-sEMG gesture datasets, one folder per builder.

Every builder produces the same example schema (`tfds_builders.schema`), so the
library reads any of them the same way. Importing a builder module registers it
with TFDS; `tfds_builders.prepare.import_builder(name)` does that by name.
"""

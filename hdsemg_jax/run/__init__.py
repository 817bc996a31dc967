"""The run layer: the only code that reads an experiment's ConfigDict.

`setup.resolve` turns a config into typed settings, devices, data and folds;
`recipe` trains one fold's seeds; `experiment` runs every fold and seed into a
workdir under its `lock`; `export_run` exports a finished run's saved models.
The libraries below (training, evaluation, classical, deployment, ...) take
those settings or plain arguments and never import this package.
"""

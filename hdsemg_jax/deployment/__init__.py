"""Deployment: exported models (ONNX, StableHLO) and the runtimes that load them.

`export` writes a saved model of a run as an ONNX file (jax2onnx) or a serialized
StableHLO module (`jax.export`), each with a JSON description beside it, after
checking it against the JAX model on frames of the fold's test set. `runtime`
loads either for prediction. Both need the optional extras of
``requirements-export.txt`` (jax2onnx, onnx, onnxruntime) for ONNX; nothing here is
imported by ``import hdsemg_jax``.
"""

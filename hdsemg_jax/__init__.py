"""hdsemg-jax: reproducible benchmarking of gesture recognition from HD-sEMG frames."""

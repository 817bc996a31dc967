"""Generator of a tiny fake flexemg release (see generate.py); no data files are tracked."""

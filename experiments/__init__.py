"""Command-line entry points and experiment configs."""

"""Scoring predictions: per-frame metrics and majority voting over windows."""

"""Signal conditioning of whole trials on the host, before windowing (see filters.py)."""

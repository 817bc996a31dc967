"""Reading prepared HD-sEMG datasets into trial records."""

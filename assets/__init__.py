"""Dagster's view of the core: thin asset functions and their checks."""

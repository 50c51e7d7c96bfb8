"""Runs: the typed config, the run folder, the tabular and image jobs, the one call, the CLI."""

"""Serving explanations: the HTTP app and its guard, connection limits, LitServe, files."""

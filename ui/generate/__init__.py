"""Helpers that serve the generate page only."""

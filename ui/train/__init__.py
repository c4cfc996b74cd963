"""Helpers that serve the train page only."""

"""Helpers that serve the explore page only."""

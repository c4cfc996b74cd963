"""Helpers that serve the chat page only."""

"""Speed paths, each fenced off beside the plain code it stands in for and pinned to it by tests/test_fast.py:
the KV cache, the one-token NumPy decode step, the cheaper dropout mask, the training process's kept memory, and
data-parallel training (torchrun)."""

"""Speed paths, each fenced off beside the plain code it stands in for and pinned to it by tests/test_fast.py:
the KV cache, the one-token NumPy decode step, the cheaper dropout mask, fp32 attention when a CPU trains in bf16,
the training process's kept memory, and data-parallel training (torchrun)."""

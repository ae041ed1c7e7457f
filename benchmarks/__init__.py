"""ragllm's benchmarks: one module per benchmark, run by `benchmarks/run.py` (see its help)."""

"""modeldrop benchmarks: each module runs on its own (`python -m benchmarks.<name>`) or via run_all."""

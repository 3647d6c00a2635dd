"""modeldrop shared layer: domain logic and AWS adapters used by every function."""

"""modeldrop local cloud: the whole pipeline on loopback, no AWS account, no Docker."""

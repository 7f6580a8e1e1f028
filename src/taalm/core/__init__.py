"""Core: configuration schema, errors, devices and dtypes, files, run folders, checkpoints and
metric logging. Layer 1: imports nothing else from taalm, and nothing heavy at import time."""

"""Reporting: tables, curves and token-weight heatmaps. Layer 4 (core, data only); matplotlib is
imported lazily inside the plotting functions."""

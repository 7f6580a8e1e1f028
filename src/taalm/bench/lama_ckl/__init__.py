"""LAMA-ckl (SPEC 2.5), registered as ``taalm bench lama-ckl``: its configuration and sizes
(:mod:`.config`), unit files (:mod:`.data`), metrics (:mod:`.metrics`), the protocol
(:mod:`.protocol`) and the folder's summary (:mod:`.report`)."""

from .config import PROBE_FORMATS, SIZES, SUBSETS, BenchOptions, LamaCklConfig, LamaCklSize, get_size, probe_format_of, resolve_config
from .data import LAMA_UNIT_FIELDS, LamaCklData, check_lama_units, lama_ckl_files, load_lama_ckl
from .metrics import curve_from_history, summarize_curve
from .protocol import LamaCkl, run_lama_ckl
from .report import format_results, write_summary

__all__ = ["PROBE_FORMATS", "SIZES", "SUBSETS", "BenchOptions", "LamaCklConfig", "LamaCklSize", "get_size",
           "probe_format_of", "resolve_config", "LAMA_UNIT_FIELDS", "LamaCklData", "check_lama_units",
           "lama_ckl_files", "load_lama_ckl", "curve_from_history", "summarize_curve", "LamaCkl", "run_lama_ckl",
           "format_results", "write_summary"]

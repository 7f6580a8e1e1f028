"""Data: reading documents, probes and pairs (records), tokenising and windows, padding.

Layer 2 (imports only ``taalm.core``). The public names are re-exported here, so
``from taalm.data import Document, read_documents, prepare_windows, collate`` works.
"""

from .collate import collate, pad_sequences
from .records import (LAMA_PROBE_FIELDS, Document, Pair, Probe, find_answer, jsonl_rows, make_probe, read_documents,
                      read_pairs, record_rows, read_probes, read_lines, string_field)
from .windows import Encoded, Window, encode, encode_document, encode_probe, prepare_windows, split_windows

__all__ = ["LAMA_PROBE_FIELDS", "Document", "Pair", "Probe", "find_answer", "jsonl_rows", "make_probe", "read_documents",
           "read_pairs", "record_rows", "read_probes", "read_lines", "string_field", "Encoded", "Window", "encode",
           "encode_document", "encode_probe", "prepare_windows", "split_windows", "collate", "pad_sequences"]

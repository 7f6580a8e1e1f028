"""Tables of stream benchmark results (``<method>/result.json`` of ``taalm bench stream``):
what a stream's ``results.md`` and ``taalm report`` print."""

from __future__ import annotations


def _f(x, d: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{d}f}"


def _minutes(seconds) -> str:
    return "—" if seconds is None else f"{float(seconds) / 60:.1f} min"


def stream_table(results: dict[str, dict], label: str | None = None) -> str:
    """method | learning | forgetting | BWT | FWT | final acc | NF θ0 → end | wall time (one row
    per method; with ``label`` a first column names the stream folder)."""
    head = "| method | learning (diag.) | forgetting | BWT | FWT | final acc | NF acc θ0 → end | wall time |"
    lines = [("| stream " if label is not None else "") + head,
             "|---" * (8 + (label is not None)) + "|"]
    for name, r in results.items():
        m = r["metrics"]
        nf = next(iter(r.get("nf", {}).values()), None)
        nf_txt = f"{nf[0]['accuracy']:.3f} → {nf[-1]['accuracy']:.3f}" if nf else "n/a"
        lines.append(("" if label is None else f"| {label} ") +
                     f"| {name} | {_f(m['mean_learning'])} | {_f(m['mean_forgetting'])} | {_f(m['bwt'])} | "
                     f"{_f(m['fwt'])} | {_f(m['final_acc'])} | {nf_txt} | {_minutes(r.get('wall_s'))} |")
    return "\n".join(lines)


def matrix_table(r: dict, set_name: str | None = None, key: str = "accuracy") -> str:
    """One method's matrix as Markdown: rows = after period i (θ0 first), columns = period j's probes."""
    name = set_name or r["primary"]
    periods = r["periods"]
    lines = ["| after \\ probes | " + " | ".join(periods) + " |", "|---|" + "---|" * len(periods)]
    for i, row in enumerate(r["sets"][name][key]):
        lines.append(f"| {'θ0' if i == 0 else periods[i - 1]} | " + " | ".join(_f(v) for v in row) + " |")
    return "\n".join(lines)


__all__ = ["stream_table", "matrix_table"]

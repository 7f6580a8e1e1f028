"""LAMA-ckl's metrics (SPEC 2.5) from the learner's history: pure functions."""

from __future__ import annotations

def curve_from_history(history: list[dict], nf_key: str = "nf") -> list[dict]:
    """Learner history rows -> curve rows (epoch, To-Learn and NF accuracy / NLL)."""
    out = []
    for r in history:
        nf = r.get(nf_key) or {}
        out.append({"epoch": r["epoch"], "to_learn_accuracy": r["accuracy"], "to_learn_nll": r["nll"],
                    "nf_accuracy": nf.get("accuracy"), "nf_nll": nf.get("nll"),
                    "eval_seconds": round(r.get("seconds", 0.0) + nf.get("seconds", 0.0), 3)})
    return out


def summarize_curve(curve: list[dict]) -> dict:
    """SPEC 2.5 over the evaluation points: Top Acc = max To-Learn accuracy; Epoch = the first
    epoch reaching it (0 = before training); NF Acc = NF accuracy at that epoch; Total = Top + NF."""
    if not curve:
        raise ValueError("empty curve")
    rows = sorted(curve, key=lambda r: r["epoch"])
    top = max(r["to_learn_accuracy"] for r in rows)
    best = next(r for r in rows if r["to_learn_accuracy"] == top)  # ties: the first epoch
    return {"top_acc": top, "epoch": best["epoch"], "nf_acc": best["nf_accuracy"],
            "total": top + best["nf_accuracy"], "n_points": len(rows),
            "final_to_learn_acc": rows[-1]["to_learn_accuracy"], "final_nf_acc": rows[-1]["nf_accuracy"],
            "nf_acc_before": rows[0]["nf_accuracy"]}


__all__ = ["curve_from_history", "summarize_curve"]

"""`data check`'s one-screen summary, read from its report (the JSON is the full story)."""

from __future__ import annotations

from typing import Any

from mt_cli.core.printable import printable

PERCENTILE_KEYS = ("p1", "p5", "p50", "p95", "p99", "max")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} %" if whole else "    - "


def _rules(document: dict[str, Any]) -> list[str]:
    read = document["pairs"]["read"]
    lines = ["rule (first that drops a pair)      pairs   share"]
    for name, count in document["rules"].items():
        off = " (off)" if _is_off(name, document) else ""
        lines.append(f"  {name + off:<28}{count:>12,} {_pct(count, read)}")
    return lines


def _is_off(rule: str, document: dict[str, Any]) -> bool:
    s = document["settings"]
    off = {"control_chars": not s["drop_control_chars"], "duplicate": not s["dedup"],
           "identical": not s["drop_identical"], "ratio_chars": not s["max_ratio_chars"],
           "ratio_words": not s["max_ratio_words"], "overlap": not document["inputs"]["against"],
           "wrong_language": not s["lang_id"] or document["languages"] is None}
    return off.get(rule, False) or (rule.startswith("mostly_") and not s["min_letter_share"])


def _lengths(stats: dict[str, Any]) -> list[str]:
    lines = [f"{'lengths':<22}" + "".join(f"{k:>8}" for k in PERCENTILE_KEYS)]
    for side in ("source", "target"):
        for unit in ("chars", "words"):
            values = stats[side][unit]
            lines.append(f"  {side + ' ' + unit:<20}" + "".join(f"{values.get(k, '-'):>8}" for k in PERCENTILE_KEYS))
    for unit in ("chars", "words"):
        values = stats[f"ratio_{unit}"]
        shown = "".join(f"{values.get(k, '-'):>8}" for k in PERCENTILE_KEYS[:-1])
        lines.append(f"  {'source/target ' + unit:<20}{shown}")
    return lines


def _languages(stats: dict[str, Any]) -> list[str]:
    lines = []
    for side in ("source", "target"):
        shares = dict(stats[side].get("languages") or {})
        sides = shares.pop("sides", 0)
        if not sides:
            continue
        top = sorted(shares.items(), key=lambda item: -item[1])[:6]
        shown = ", ".join(f"{code} {100 * share:.1f} %" for code, share in top)
        lines.append(f"  {side:<8}{shown}  (of {sides:,} lines)")
    return ["languages (of the pairs reaching the language rule)", *lines] if lines else []


def summary_text(document: dict[str, Any]) -> str:
    """Counts per rule, length and ratio percentiles, language shares, overlap per --against file."""
    pairs = document["pairs"]
    inputs = document["inputs"]
    kept = _pct(pairs["kept"], pairs["read"]).strip()
    head = [f"{printable(inputs['source']['path'])} + {printable(inputs['target']['path'])}: "
            f"{pairs['read']:,} pairs; clean would keep {pairs['kept']:,} ({kept}), drop {pairs['dropped']:,}"]
    overlap = [f"  {printable(path)}: {count:,} pairs" for path, count in document["overlap"].items()]
    lines = [*head, "", *_rules(document), "", *_lengths(document["stats"])]
    languages = _languages(document["stats"])
    if languages:
        lines += ["", *languages]
    if overlap:
        lines += ["", "overlap with --against (source or target is one of its lines)", *overlap]
    return "\n".join(lines)

"""The replay report as tables a person reads in a terminal (`--format text`)."""

from __future__ import annotations

from typing import Any


def render_report(report: dict[str, Any]) -> str:
    events = report["events"]
    lines = [
        f"events     {events['valid']} valid, {events['invalid']} invalid, {events['duplicates']} duplicates",
        f"watermark  {report['watermark'] or '-'}",
        f"leads      {report['leads']}",
        "",
        _counts("Pipeline (leads per stage)", report["pipeline"], report["leads"]),
        "",
        _counts("Qualification", report["qualification"], report["leads"]),
        "",
        _funnel(report["funnel"]),
    ]
    return "\n".join(lines) + "\n"


def render_comparison(comparison: dict[str, Any]) -> str:
    parts = [
        "== Baseline ==",
        render_report(comparison["baseline"]),
        "== Candidate ==",
        render_report(comparison["candidate"]),
        _changes("Stage changes (leads)", comparison["stage_changes"]),
        "",
        _changes("Qualification changes (leads)", comparison["qualification_changes"]),
    ]
    return "\n".join(parts) + "\n"


def _counts(title: str, counts: dict[str, int], total: int) -> str:
    width = max([len(name) for name in counts] + [5])
    rows = [title] + [f"  {name:<{width}}  {n:>8}  {_percent(n, total):>6}" for name, n in counts.items()]
    return "\n".join(rows)


def _funnel(funnel: dict[str, int]) -> str:
    width = max([len(name) for name in funnel] + [5])
    rows = [f"Funnel (AIDA)\n  {'step':<{width}}  {'leads':>8}  {'of prev':>7}  {'of top':>7}"]
    previous = top = None
    for name, n in funnel.items():
        top = n if top is None else top
        step = "" if previous is None else _percent(n, previous)
        rows.append(f"  {name:<{width}}  {n:>8}  {step:>7}  {_percent(n, top):>7}")
        previous = n
    if len(funnel) > 1 and top is not None:
        rows.append(f"  overall conversion {_percent(previous or 0, top)}")
    return "\n".join(rows)


def _changes(title: str, changes: dict[str, int]) -> str:
    if not changes:
        return f"{title}\n  none"
    width = max(len(pair) for pair in changes)
    return "\n".join([title] + [f"  {pair:<{width}}  {n:>8}" for pair, n in changes.items()])


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"

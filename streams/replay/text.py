"""The replay report as tables a person reads in a terminal (`--format text`)."""

from __future__ import annotations

from typing import Any

from projections.report import nearest_rank


def render_report(report: dict[str, Any]) -> str:
    events = report["events"]
    lines = [
        f"events     {events['valid']} valid, {events['invalid']} invalid, {events['duplicates']} duplicates",
        f"watermark  {report['watermark'] or '-'}",
        f"persons    {report['leads']} (leads, with the anonymous ids that joined them, and anonymous visitors who joined none)",
        _identity(report.get("identity")),
        "",
        _counts("Pipeline (leads per stage)", report["pipeline"], report["leads"]),
        "",
        _counts("Qualification", report["qualification"], report["leads"]),
        "",
        _funnel(report["funnel"]),
    ]
    if "velocity" in report:
        lines += ["", _velocity(report["velocity"]), "", _window(report["funnel_window"], report["time_to_convert"])]
    for dimension, values in report.get("attribution", {}).items():
        lines += ["", _attribution(dimension, values)]
    return "\n".join(lines) + "\n"


def _identity(identity: dict[str, int] | None) -> str:
    """SPEC §9: how many anonymous ids there were, and what became of them."""
    if not identity or not identity["anonymous_ids"]:
        return "identity   no anonymous ids"
    apart = identity["anonymous_ids"] - identity["joined"] - identity["over_limit"]
    return (
        f"identity   {identity['anonymous_ids']} anonymous ids: {identity['joined']} joined their lead, "
        f"{identity['over_limit']} over a lead's limit, {apart} joined none"
    )


def render_comparison(comparison: dict[str, Any], baseline_name: str = "baseline", candidate_name: str = "candidate") -> str:
    """What changes first (leads that move, the main counts side by side), then both reports in full."""
    baseline, candidate = comparison["baseline"], comparison["candidate"]
    events = baseline["events"]
    parts = [
        f"Comparison over one log (valid events {events['valid']}, leads {baseline['leads']}, watermark {baseline['watermark'] or '-'})",
        f"  baseline   {baseline_name}",
        f"  candidate  {candidate_name}",
        "",
        _changes("Stage changes (leads)", comparison["stage_changes"]),
        "",
        _changes("Qualification changes (leads)", comparison["qualification_changes"]),
        "",
        _side_by_side("Pipeline (leads per stage)", baseline["pipeline"], candidate["pipeline"]),
        "",
        _side_by_side("Qualification", baseline["qualification"], candidate["qualification"]),
        "",
        _side_by_side("Funnel (AIDA): leads that reached each step", baseline["funnel"], candidate["funnel"]) + "\n" + _overall(baseline, candidate),
        "",
        f"== Details: the baseline report ({baseline_name}) ==",
        render_report(baseline),
        f"== Details: the candidate report ({candidate_name}) ==",
        render_report(candidate),
    ]
    return "\n".join(parts).rstrip("\n") + "\n"


def _side_by_side(title: str, old: dict[str, int], new: dict[str, int]) -> str:
    """Counts of both reports per name; a name only one side defines shows `-` on the other."""
    names = list(dict.fromkeys([*old, *new]))
    width = max([len(name) for name in names] + [5])
    rows = [title, f"  {'':<{width}}  {'baseline':>9}  {'candidate':>9}  {'change':>7}"]
    for name in names:
        before, after = old.get(name), new.get(name)
        change = (after or 0) - (before or 0)
        rows.append(f"  {name:<{width}}  {_count(before):>9}  {_count(after):>9}  {f'{change:+d}' if change else '0':>7}")
    return "\n".join(rows)


def _overall(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Conversion from the first funnel step to the last, both sides."""
    def conversion(report: dict[str, Any]) -> str:
        reached = list(report["funnel"].values())
        return _percent(reached[-1], reached[0]) if len(reached) > 1 else "-"

    return f"  overall conversion {conversion(old)} -> {conversion(new)}"


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


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


def _velocity(velocity: dict[str, Any]) -> str:
    """SPEC §10: per stage, who entered it, who moved on and after how many whole days, who waits."""
    width = max([len(name) for name in velocity] + [5])
    rows = [
        "Time in stage (whole days)",
        f"  {'stage':<{width}}  {'entered':>8}  {'moved on':>8}  {'median':>6}  {'p90':>5}  {'waiting':>8}  {'waiting median':>14}",
    ]
    for name, row in velocity.items():
        rows.append(
            f"  {name:<{width}}  {row['entered']:>8}  {row['moved_on']:>8}  {_count(row['median_days']):>6}  {_count(row['p90_days']):>5}  "
            f"{row['waiting']:>8}  {_count(nearest_rank({int(day): n for day, n in row['waiting_days'].items()}, 0.5)):>14}"
        )
    return "\n".join(rows)


def _window(window: dict[str, Any], to_convert: dict[str, Any]) -> str:
    """SPEC §10: the funnel counting a step only when reached within the window of the first, and the days it took."""
    steps = window["steps"]
    width = max([len(name) for name in steps] + [5])
    rows = [
        f"Funnel within {window['days']} days of the first step, and time to convert (whole days)",
        f"  {'step':<{width}}  {'leads':>8}  {'of top':>7}  {'median':>6}  {'p90':>5}",
    ]
    top = next(iter(steps.values()), 0)
    for name, n in steps.items():
        took = to_convert.get(name, {})
        rows.append(f"  {name:<{width}}  {n:>8}  {_percent(n, top):>7}  {_count(took.get('median_days')):>6}  {_count(took.get('p90_days')):>5}")
    return "\n".join(rows)


def _attribution(dimension: str, values: dict[str, Any]) -> str:
    """The funnel broken down by first touch: most leads first."""
    title = f"Attribution by first-touch {dimension}"
    if not values:
        return f"{title}\n  no leads"
    rows = [(value or '""', row) for value, row in sorted(values.items(), key=lambda item: (-item[1]["leads"], item[0]))]  # "" is a value too
    width = max([len(value) for value, _ in rows] + [len(dimension)])
    header = f"  {dimension:<{width}}  {'leads':>8}  {'action':>8}  {'conv':>6}  {'customers':>9}  revenue"
    lines = [title, header]
    for value, row in rows:
        reached = list(row["funnel"].values())
        action = reached[-1] if reached else 0
        revenue = ", ".join(f"{currency} {amount:,.2f}" for currency, amount in row["revenue"].items()) or "-"
        lines.append(f"  {value:<{width}}  {row['leads']:>8}  {action:>8}  {_percent(action, row['leads']):>6}  {row['customers']:>9}  {revenue}")
    return "\n".join(lines)


def _changes(title: str, changes: dict[str, int]) -> str:
    if not changes:
        return f"{title}\n  none"
    width = max(len(pair) for pair in changes)
    return "\n".join([title] + [f"  {pair:<{width}}  {n:>8}" for pair, n in changes.items()])


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"

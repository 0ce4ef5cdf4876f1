"""``diff``: what a price-table update changes, whether it follows the update rules, and what
it does to a saved workload. Text for people, JSON for tools, Markdown for a pull request."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imagine_billing._checks import format_timestamp
from imagine_billing.cli.output import JSON_NUMBERS, columns, decimal_text, emit_json
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import PriceTable

if TYPE_CHECKING:
    from fractions import Fraction

    from imagine_billing.planner.workloads import WorkloadImpact
    from imagine_billing.pricing.updates import Finding, TableDiff, UpdatePolicy

__all__ = [
    "add_policy_option",
    "change_rows",
    "impact_rows",
    "policy_from",
    "register",
    "render_markdown",
    "render_text",
]


def register(commands: Any) -> None:
    """Add ``diff`` to the command parsers."""
    diff = commands.add_parser(
        "diff",
        help="compare two price tables: changes, update-rule findings, workload impact",
        description="Compare two price documents: what changed (added, removed, repriced, "
        "deprecated, metadata), the findings of the update rules (semantic versioning, "
        "deprecation before removal, prices that stay known, --policy limits), and, with "
        "--workload, what the change does to a saved call list. Exit 0 when no finding is "
        "an error, 1 when one is or a table is invalid, 2 when an input cannot be read.",
    )
    diff.add_argument("old", metavar="OLD", help="the price document in force (JSON)")
    diff.add_argument("new", metavar="NEW", help="the proposed price document (JSON)")
    add_policy_option(diff)
    diff.add_argument(
        "--workload", metavar="FILE", default=None,
        help="a call list (the estimator's workload JSON) to price under both tables",
    )
    output = diff.add_mutually_exclusive_group()
    output.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text",
        help="text for people (the default), json for tools, markdown for a pull-request "
        "comment",
    )
    output.add_argument("--json", action="store_const", const="json", dest="format",
                        help=f"the same as --format json. {JSON_NUMBERS}")
    diff.set_defaults(run=run_diff)


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    """The ``--policy FILE`` option of the commands that check updates."""
    parser.add_argument(
        "--policy", metavar="FILE", default=None,
        help='an update policy (JSON), such as {"rules": {"deprecate-before-remove": '
        '"warning"}, "max_increase": {"*": 1.5}}',
    )


def policy_from(args: argparse.Namespace) -> UpdatePolicy:
    """The policy ``--policy`` names, or the default one."""
    from imagine_billing.pricing.updates import UpdatePolicy, load_policy

    return UpdatePolicy() if args.policy is None else load_policy(args.policy)


def run_diff(args: argparse.Namespace) -> int:
    from imagine_billing.pricing.updates import check_update, diff_tables

    output = args.format
    policy = policy_from(args)
    old = load_price_table(args.old)
    new = load_price_table(args.new)
    impact = None
    if args.workload is not None:
        from imagine_billing.estimator import load_calls
        from imagine_billing.planner.workloads import recost

        impact = recost(load_calls(args.workload), old, new)
    diff = diff_tables(old, new)
    findings = check_update(old, new, policy)
    if output == "json":
        document: dict[str, Any] = {
            "ok": not _errors(findings),
            "old": _ref(old, args.old),
            "new": _ref(new, args.new),
            "diff": _diff_document(diff),
            "findings": [f.to_dict() for f in findings],
        }
        if impact is not None:
            document["workload"] = {"path": args.workload, **_impact_document(impact)}
        emit_json(document)
    elif output == "markdown":
        print(render_markdown(old, new, diff, findings, impact), end="")
    else:
        print(render_text(old, new, diff, findings, impact), end="")
    return 1 if _errors(findings) else 0


def _ratio_text(ratio: Fraction | None) -> str | None:
    return None if ratio is None else decimal_text(ratio)


def _diff_document(diff: TableDiff) -> dict[str, Any]:
    """`TableDiff.to_dict` with each ratio as a decimal string (`JSON_NUMBERS`)."""
    document = diff.to_dict()
    for entry, repriced in zip(document["repriced"], diff.repriced, strict=True):
        entry["ratio"] = _ratio_text(repriced.ratio)
    return document


def _impact_document(impact: WorkloadImpact) -> dict[str, Any]:
    """`WorkloadImpact.to_dict` with each ratio as a decimal string (`JSON_NUMBERS`)."""
    document = impact.to_dict()
    document["ratio"] = _ratio_text(impact.ratio)
    for entry, style in zip(document["styles"], impact.styles, strict=True):
        entry["ratio"] = _ratio_text(style.ratio)
    return document


def _ref(table: PriceTable, path: str) -> dict[str, Any]:
    return {"path": path, "api": table.api, "version": table.version,
            "effective_from": format_timestamp(table.effective_from), "digest": table.digest}


def _errors(findings: Sequence[Finding]) -> int:
    return sum(f.severity == "error" for f in findings)


def _cost(cost: int | None) -> str:
    return "unpriced" if cost is None else str(cost)


def _ratio(ratio: Fraction | None, places: int = 2) -> str:
    from imagine_billing.pricing.updates import format_ratio

    return "-" if ratio is None else f"x{format_ratio(ratio, places)}"


def _known(tokens: int | None) -> str:
    return "n/a" if tokens is None else str(tokens)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _signed(value: int | None) -> str:
    return "-" if value is None else f"{value:+d}"


def _operation_cost(table: PriceTable, oid: str) -> str:
    """An operation's flat cost, or ``"by style"`` when its calls are billed by style (it
    has a default style or styles of its own), as ``prices`` shows it."""
    operation = table.operations[oid]
    if operation.cost is None and (
        operation.default_style is not None
        or any(s.operation == oid for s in table.styles.values())
    ):
        return "by style"
    return _cost(operation.cost)


def _value(value: object) -> str:
    return "(none)" if value is None else str(value)


def change_rows(old: PriceTable, new: PriceTable, diff: TableDiff) -> list[tuple[str, ...]]:
    """One row per change: (change, what, old, new, ratio), in a reviewer's order."""
    rows: list[tuple[str, ...]] = [
        ("removed", f"style {sid}", _cost(old.styles[sid].cost), "-", "-")
        for sid in diff.styles_removed
    ]
    rows.extend(("removed", f"operation {oid}", _operation_cost(old, oid), "-", "-")
                for oid in diff.operations_removed)
    for r in diff.repriced:
        if r.old is not None and r.new is None:
            ratio = "unpriced"
        elif r.old is None:
            ratio = "newly priced"
        elif r.old == 0:
            ratio = "from 0"
        else:
            ratio = _ratio(r.ratio)
        rows.append(("repriced", f"{r.kind} {r.id}", _cost(r.old), _cost(r.new), ratio))
    rows.extend(("status", f"style {s.id}", s.old, s.new, "-") for s in diff.status_changes)
    rows.extend(("added", f"style {sid}", "-", _cost(new.styles[sid].cost), "-")
                for sid in diff.styles_added)
    rows.extend(("added", f"operation {oid}", "-", _operation_cost(new, oid), "-")
                for oid in diff.operations_added)
    rows.extend(("changed", c.path, _value(c.old), _value(c.new), "-") for c in diff.metadata)
    return rows


def impact_rows(impact: WorkloadImpact) -> list[tuple[str, ...]]:
    """One row per style of a workload: (style, calls, old, new, difference, ratio)."""
    rows: list[tuple[str, ...]] = []
    for s in impact.styles:
        if s.comparable:
            rows.append((s.label, str(s.calls), str(s.old), str(s.new), _signed(s.difference),
                         _ratio(s.ratio, 3)))
        else:
            rows.append((s.label, str(s.calls), _known(s.old), _known(s.new), "not comparable",
                         "-"))
    rows.append(("total", str(sum(s.calls for s in impact.styles)), str(impact.old_total),
                 str(impact.new_total), _signed(impact.difference), _ratio(impact.ratio, 3)))
    return rows


def _summary(old: PriceTable, new: PriceTable, diff: TableDiff, arrow: str = "->") -> str:
    if diff.empty:
        return "the tables are identical"
    bump = diff.required_bump
    needs = "no version bump" if bump == "none" else f"a {bump} version bump"
    return (f"effective {format_timestamp(old.effective_from)} {arrow} "
            f"{format_timestamp(new.effective_from)}; the changes need {needs}")


def _not_comparable(impact: WorkloadImpact) -> list[str]:
    lines = []
    for s in impact.not_comparable:
        for side, problem in (("old", s.old_problem), ("new", s.new_problem)):
            if problem:
                lines.append(f"{s.label} ({side} table): {problem}")
    return lines


def render_text(
    old: PriceTable, new: PriceTable, diff: TableDiff, findings: Sequence[Finding],
    impact: WorkloadImpact | None = None,
) -> str:
    """The ``diff`` report for people."""
    out = [f"{old.api} {old.version} -> {new.version}", _summary(old, new, diff), ""]
    rows = change_rows(old, new, diff)
    if rows:
        out += [columns(["CHANGE", "WHAT", "OLD", "NEW", "RATIO"], rows, right=(2, 3)), ""]
    errors = _errors(findings)
    warnings = len(findings) - errors
    out.append(f"findings: {errors} error{'s' if errors != 1 else ''}, "
               f"{warnings} warning{'s' if warnings != 1 else ''}")
    out += [f"  {f}" for f in findings]
    if impact is not None:
        out += ["", "workload impact (tokens):",
                columns(["STYLE", "CALLS", "OLD", "NEW", "DIFFERENCE", "RATIO"],
                        impact_rows(impact), right=(1, 2, 3, 4, 5))]
        missing = _not_comparable(impact)
        if missing:
            out += ["", "not comparable (left out of the totals):"]
            out += [f"  {line}" for line in missing]
    return "\n".join(out) + "\n"


_TIMES = "\N{MULTIPLICATION SIGN}"


_MARKDOWN = re.compile(r"([\\`*_\[\]<>~&|])")
"""What Markdown could read as markup in a name: escaped with a backslash (CommonMark)."""


class _Markup(str):
    """Text that is Markdown already (a code span of an id, bold): a cell shows it as is."""

    __slots__ = ()


def _code(text: str) -> str:
    """``text`` as a code span; as escaped text when it holds what a code span in a table
    cannot (a backtick, a pipe or a line break: a workload may name any style)."""
    if "`" in text or "|" in text or len(text.splitlines()) > 1:
        return text
    return _Markup(f"`{text}`")


def _cell(text: str) -> str:
    """``text`` fit for one Markdown table cell, shown as written: the characters Markdown
    reads as markup (backslash, backtick, ``* _ [ ] < > ~ & |``: emphasis, code, links,
    HTML, the cell's end) escaped, unless it is `_Markup`; and every line break (CR, LF and
    the others `str.splitlines` knows) made a space."""
    if not isinstance(text, _Markup):
        text = _MARKDOWN.sub(r"\\\1", text)
    return " ".join(text.splitlines())


def _md_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(
    old: PriceTable, new: PriceTable, diff: TableDiff, findings: Sequence[Finding],
    impact: WorkloadImpact | None = None,
) -> str:
    """The ``diff`` report as Markdown, fit to paste as a pull-request comment."""
    errors = _errors(findings)
    verdict = (f"**{errors} error{'s' if errors != 1 else ''}**: this update breaks the update "
               "rules." if errors else "No errors: this update follows the update rules.")
    out = [f"### Price table update: `{old.api}` {old.version} → {new.version}", "",
           f"{_capital(_summary(old, new, diff, '→'))}. {verdict}", ""]
    rows = change_rows(old, new, diff)
    out.append("#### Changes")
    out.append("")
    if rows:
        rows = [(c, _code(w), o, n, _TIMES + r[1:] if r.startswith("x") else r)
                for c, w, o, n, r in rows]
        out.append(_md_table(["Change", "What", "Old", "New", "Ratio"], rows, right=(2, 3, 4)))
    else:
        out.append("No changes.")
    out += ["", "#### Findings", ""]
    if findings:
        for f in findings:
            mark = "❌ **error**" if f.severity == "error" else "⚠️ warning"
            # "" is the whole document; "/" would be the member with an empty name.
            where = f"`{f.path}`" if f.path else "(document)"
            out.append(f"- {mark} `{f.rule}` at {where}: {f.message}")
    else:
        out.append("None.")
    if impact is not None:
        out += ["", "#### Workload impact (tokens)", ""]
        irows = [(_code(s) if s != "total" else _Markup("**total**"), *rest[:-1],
                  _TIMES + rest[-1][1:] if rest[-1].startswith("x") else rest[-1])
                 for s, *rest in impact_rows(impact)]
        out.append(_md_table(["Style", "Calls", "Old", "New", "Difference", "Ratio"], irows,
                             right=(1, 2, 3, 4, 5)))
        missing = _not_comparable(impact)
        if missing:
            out += ["", "Not comparable (left out of the totals):", ""]
            out += [f"- {_cell(line)}" for line in missing]
    return "\n".join(out) + "\n"

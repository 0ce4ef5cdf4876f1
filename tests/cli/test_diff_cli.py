"""The diff command, and validate --book."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from tests.helpers import DATA, run

UPDATES = DATA / "updates"
WORKLOAD = UPDATES / "workload.json"
LATER = "2026-01-01T00:00:00Z"


def write(directory: Path, name: str, table: ib.PriceTable) -> str:
    """Save ``table`` as a price document; return its path."""
    path = directory / name
    path.write_text(json.dumps(table.to_dict(), indent=2))
    return str(path)


def successor(patch: dict[str, Any], version: str, base: ib.PriceTable | None = None,
              when: str = LATER) -> ib.PriceTable:
    """The published table (or ``base``) with ``patch`` merged in, dated later."""
    table = ib.load_price_table() if base is None else base
    return table.with_overrides({"effective_from": when, **patch}, version=version)


@pytest.fixture
def old(tmp_path: Path) -> str:
    """The published table, as a file."""
    return write(tmp_path, "old.json", ib.load_price_table())


@pytest.fixture
def cut(tmp_path: Path) -> str:
    """flux-dev 15 -> 10 under 1.1.0."""
    return write(tmp_path, "cut.json", successor({"styles": {"flux-dev": {"cost": 10}}}, "1.1.0"))


@pytest.fixture
def removed(tmp_path: Path) -> str:
    """anime removed without deprecation, under 2.0.0."""
    return write(tmp_path, "removed.json", successor({"styles": {"anime": None}}, "2.0.0"))


class TestDiffText:
    """imagine-billing diff OLD NEW (text)."""

    def test_price_cut_passes(self, old: str, cut: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A price cut with a minor bump: exit 0, the repricing shown with its ratio."""
        assert 0 == main(["diff", old, cut])
        out = capsys.readouterr().out
        row = next(line.split() for line in out.splitlines() if line.startswith("repriced"))
        assert ["repriced", "style", "flux-dev", "15", "10", "x0.67"] == row
        assert "imagine-api 1.0.0 -> 1.1.0" in out
        assert "minor version bump" in out
        assert "findings: 0 errors, 0 warnings" in out

    def test_removal_fails(self, old: str, removed: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
        """A removal without deprecation: exit 1 and the finding with its rule."""
        assert 1 == main(["diff", old, removed])
        out = capsys.readouterr().out
        assert ("error: /styles/anime: style 'anime' was removed without being deprecated "
                "first (1.0.0 -> 2.0.0)") in out
        assert "[deprecate-before-remove]" in out

    def test_identical(self, old: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The same file twice: exit 0, said to be identical."""
        assert 0 == main(["diff", old, old])
        assert "the tables are identical" in capsys.readouterr().out

    def test_workload(self, old: str, cut: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--workload prints each style's tokens before and after, and the total."""
        assert 0 == main(["diff", old, cut, "--workload", str(WORKLOAD)])
        out = capsys.readouterr().out
        rows: dict[str, list[str]] = {}
        for line in out.splitlines():
            if line.split() and line.split()[0] in ("flux-dev", "total", "sdxl-1.0"):
                rows.setdefault(line.split()[0], line.split())
        assert ["flux-dev", "4", "60", "40", "-20", "x0.667"] == rows["flux-dev"]
        assert ["total", "17", "80", "60", "-20", "x0.75"] == rows["total"]
        assert "not comparable" in " ".join(rows["sdxl-1.0"])
        assert "no published price" in out


class TestDiffFormats:
    """--format json and markdown."""

    def test_json(self, old: str, removed: str, capsys: pytest.CaptureFixture[str]) -> None:
        """JSON has the verdict, both tables, the diff and the findings."""
        assert 1 == main(["diff", old, removed, "--format", "json"])
        document = json.loads(capsys.readouterr().out)
        assert document["ok"] is False
        assert ("1.0.0", "2.0.0") == (document["old"]["version"], document["new"]["version"])
        assert ["anime"] == document["diff"]["styles_removed"]
        assert "major" == document["diff"]["required_bump"]
        assert [("deprecate-before-remove", "error", "/styles/anime")] == [
            (f["rule"], f["severity"], f["path"]) for f in document["findings"]]

    def test_json_flag(self, old: str, cut: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--json is --format json."""
        assert 0 == main(["diff", old, cut, "--json"])
        first = json.loads(capsys.readouterr().out)
        assert 0 == main(["diff", old, cut, "--format", "json"])
        assert first == json.loads(capsys.readouterr().out)
        assert first["ok"] is True
        assert [{"kind": "style", "id": "flux-dev", "path": "/styles/flux-dev/cost", "old": 15,
                 "new": 10, "ratio": "0.666667"}] == first["diff"]["repriced"]

    def test_json_workload(self, old: str, cut: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The JSON workload part has totals and per-style entries."""
        assert 0 == main(["diff", old, cut, "--json", "--workload", str(WORKLOAD)])
        workload = json.loads(capsys.readouterr().out)["workload"]
        assert (80, 60, -20, "0.75", False) == (
            workload["old_total"], workload["new_total"], workload["difference"],
            workload["ratio"], workload["complete"])

    def test_markdown(self, old: str, removed: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Markdown has a title, a table of changes, the findings and the workload impact."""
        assert 1 == main(["diff", old, removed, "--format", "markdown",
                          "--workload", str(WORKLOAD)])
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0].startswith("### Price table update: `imagine-api` 1.0.0")
        assert "| Change | What | Old | New | Ratio |" in lines
        assert "| removed | `style anime` | 5 | - | - |" in lines
        assert any(line.startswith("- ❌ **error** `deprecate-before-remove` at `/styles/anime`")
                   for line in lines)
        assert "#### Workload impact (tokens)" in lines
        assert "| `anime` | 2 | 10 | n/a | not comparable | - |" in lines

    def test_markdown_escapes_pipes(self, old: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """A '|' in a value does not break the Markdown table."""
        new = write(tmp_path, "new.json",
                    successor({"styles": {"anime": {"name": "Anime | v2"}}}, "1.0.1"))
        assert 0 == main(["diff", old, new, "--format", "markdown"])
        assert "| changed | `/styles/anime/name` | Anime | Anime \\| v2 | - |" in (
            capsys.readouterr().out.splitlines())


    def test_markdown_shows_markup_as_written(self, old: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """HTML, emphasis and code in a name are escaped, so the comment shows them as text."""
        new = write(tmp_path, "new.json",
                    successor({"styles": {"anime": {"name": "<b>A</b> *n* `i` [m](e)"}}},
                              "1.0.1"))
        assert 0 == main(["diff", old, new, "--format", "markdown"])
        assert ("| changed | `/styles/anime/name` | Anime | "
                "\\<b\\>A\\</b\\> \\*n\\* \\`i\\` \\[m\\](e) | - |") in (
            capsys.readouterr().out.splitlines())

    def test_markdown_workload_style_with_a_backtick(self, old: str, cut: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
        """A workload's unknown style holding a backtick and a pipe stays in its cell."""
        workload = tmp_path / "w.json"
        workload.write_text(json.dumps([{"style": "a`b|c"}]))
        assert 0 == main(["diff", old, cut, "--format", "markdown", "--workload",
                          str(workload)])
        assert "| a\\`b\\|c | 1 | n/a | n/a | not comparable | - |" in (
            capsys.readouterr().out.splitlines())

    @pytest.mark.parametrize("newline", ["\r", "\n", "\r\n", "\u2028", "\x85", "\x0b"])
    def test_markdown_line_breaks(self, old: str, tmp_path: Path, newline: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A line break of any kind in a value stays inside its table row (as a space)."""
        new = write(tmp_path, "new.json",
                    successor({"styles": {"anime": {"name": f"Anime{newline}| v2"}}}, "1.0.1"))
        assert 0 == main(["diff", old, new, "--format", "markdown"])
        out = capsys.readouterr().out
        assert "| changed | `/styles/anime/name` | Anime | Anime \\| v2 | - |" in out.split("\n")

    def test_markdown_escapes_backslashes(self, old: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
        """A backslash is escaped, so one before a '|' cannot undo the pipe's escape."""
        new = write(tmp_path, "new.json",
                    successor({"styles": {"anime": {"name": "Anime \\| v2"}}}, "1.0.1"))
        assert 0 == main(["diff", old, new, "--format", "markdown"])
        assert "| changed | `/styles/anime/name` | Anime | Anime \\\\\\| v2 | - |" in (
            capsys.readouterr().out.splitlines())

    def test_markdown_document_finding(self, old: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """A finding about the whole document shows as (document), not '/' (which would be
        the member with an empty name)."""
        policy = tmp_path / "policy.json"
        policy.write_text('{"max_increase": {"retired-style": 2}}')
        new = write(tmp_path, "new.json", successor({"note": "n"}, "1.0.1"))
        assert 0 == main(["diff", old, new, "--format", "markdown", "--policy", str(policy)])
        lines = capsys.readouterr().out.splitlines()
        assert any(line.startswith("- ⚠️ warning `max-increase` at (document): the policy sets "
                                   "max_increase for 'retired-style'") for line in lines)

    def test_operations_billed_by_style(self, old: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        """An added or removed operation billed by its styles shows "by style", not
        "unpriced"; one with neither styles nor a price shows "unpriced"."""
        new = write(tmp_path, "new.json", successor({
            "styles": {"product-shoot": None,
                       "sketch-a": {"name": "Sketch A", "cost": 3, "operation": "sketch"}},
            "operations": {"ai-background": None, "retouch": None,
                           "sketch": {"name": "Sketch", "method": "POST", "path": "/v2/sketch",
                                      "default_style": "sketch-a"}},
        }, "2.0.0"))
        main(["diff", old, new])
        rows = {tuple(line.split()[:3]): line.split()[3:]
                for line in capsys.readouterr().out.splitlines()
                if line.startswith(("added", "removed"))}
        assert ["by", "style", "-", "-"] == rows[("removed", "operation", "ai-background")]
        assert ["unpriced", "-", "-"] == rows[("removed", "operation", "retouch")]
        assert ["-", "by", "style", "-"] == rows[("added", "operation", "sketch")]


class TestDiffPolicy:
    """--policy FILE."""

    def test_lenient_policy_passes(self, old: str, removed: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        """A policy that makes removal a warning turns exit 1 into exit 0."""
        policy = str(UPDATES / "policies" / "lenient.json")
        assert 0 == main(["diff", old, removed, "--policy", policy])
        assert "warning: /styles/anime" in capsys.readouterr().out

    def test_limits(self, old: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """max_increase in the policy fails a rise above it."""
        new = write(tmp_path, "new.json",
                    successor({"styles": {"anime": {"cost": 8}}}, "2.0.0"))
        policy = str(UPDATES / "policies" / "limits.json")
        assert 1 == main(["diff", old, new, "--policy", policy])
        assert "[max-increase]" in capsys.readouterr().out


    def test_default_style_switch_over_the_limit(self, old: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
        """A default style switch that raises calls naming no style x15 fails a x1.5 limit."""
        policy = tmp_path / "policy.json"
        policy.write_text('{"max_increase": {"*": "1.5"}}')
        new = write(tmp_path, "new.json", successor(
            {"operations": {"text-to-image": {"default_style": "flux-dev"}}}, "2.0.0"))
        assert 1 == main(["diff", old, new, "--policy", str(policy)])
        assert ("error: /operations/text-to-image/default_style: calls to operation "
                "'text-to-image' that name no style rose from 1 token to 15 tokens (x15)") in (
                    capsys.readouterr().out)

    @pytest.mark.parametrize(
        ("text", "words"),
        [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
         ('{"max_increase": {"*": 1e999999999}}', "must be at most 1000000"),
         ('{"max_increase": {"*": "1e999999999"}}', "must be at most 1000000")],
        ids=["deep", "huge-exponent-number", "huge-exponent-text"],
    )
    def test_unusable_policy_exits_2(self, old: str, cut: str, tmp_path: Path, text: str,
                                     words: str) -> None:
        """A policy nested too deeply or with a huge exponent: exit 2, one line, at once."""
        policy = tmp_path / "policy.json"
        policy.write_text(text)
        result = run("diff", old, cut, "--policy", str(policy))
        assert 2 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines())
        assert "Traceback" not in result.stderr
        assert words in result.stderr


class TestInvalidTable:
    """A table that is read but invalid: a failed check, like `validate`."""

    def test_exit_1(self, old: str, tmp_path: Path) -> None:
        """diff OLD BAD exits 1 with one line naming the problems, nothing on stdout."""
        bad = tmp_path / "bad.json"
        bad.write_text('{"format": 1}')
        result = run("diff", old, str(bad))
        assert 1 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines())
        assert "is invalid" in result.stderr
        assert "Traceback" not in result.stderr
        assert "" == result.stdout


class TestDiffErrors:
    """Unreadable input: exit 2, one line on stderr, no traceback (a real process)."""

    @pytest.mark.parametrize(
        ("extra", "words"),
        [
            (["missing.json"], "cannot read the file"),
            (["NEW", "--policy", str(UPDATES / "policies" / "unknown-rule.json")],
             "did you mean 'semver-bump'"),
            (["NEW", "--policy", "missing-policy.json"], "cannot read policy file"),
            (["NEW", "--workload", "missing-workload.json"], "cannot read"),
        ],
    )
    def test_exit_2(self, old: str, cut: str, tmp_path: Path, extra: list[str],
                    words: str) -> None:
        """Each unreadable input gives exit 2 and one clear line."""
        bad = tmp_path / "bad.json"
        bad.write_text('{"format": 1}')
        args = [str(bad) if a == "BAD" else cut if a == "NEW" else a for a in extra]
        result = run("diff", old, *args)
        assert 2 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines())
        assert "Traceback" not in result.stderr
        assert words in result.stderr
        assert "" == result.stdout

    def test_findings_exit_1_in_a_process(self, old: str, removed: str) -> None:
        """A real process exits 1 on an error finding, with the report on stdout."""
        result = run("diff", old, removed, "--format", "markdown")
        assert 1 == result.returncode
        assert "deprecate-before-remove" in result.stdout
        assert "" == result.stderr

    def test_json_and_format_conflict(self, old: str, cut: str) -> None:
        """--json with --format text is bad usage."""
        result = run("diff", old, cut, "--json", "--format", "text")
        assert 2 == result.returncode
        assert "not allowed with" in result.stderr


class TestValidateBook:
    """imagine-billing validate --book FILE..."""

    @pytest.fixture
    def book(self, tmp_path: Path) -> list[str]:
        """1.0.0 published, 1.1.0 deprecates anime, 2.0.0 removes it (files out of order)."""
        deprecated = successor({"styles": {"anime": {"status": "deprecated"}}}, "1.1.0")
        gone = successor({"styles": {"anime": None}}, "2.0.0", deprecated,
                         when="2099-01-01T00:00:00Z")
        return [write(tmp_path, "c.json", gone), write(tmp_path, "a.json", ib.load_price_table()),
                write(tmp_path, "b.json", deprecated)]

    def test_good_book(self, book: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """Every step follows the rules: exit 0, the versions in order."""
        assert 0 == main(["validate", "--book", *book])
        out = capsys.readouterr().out
        assert "valid    book imagine-api (1.0.0, 1.1.0, 2.0.0): 0 errors, 0 warnings" in out

    def test_bad_step(self, old: str, removed: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A removal without deprecation in the book: exit 1, the finding with its version."""
        assert 1 == main(["validate", "--book", old, removed])
        out = capsys.readouterr().out
        assert "  error: 2.0.0: /styles/anime: style 'anime' was removed" in out

    def test_withdrawn_is_reported_not_failed(self, book: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """A scheduled version dropped from the book is a warning: exit 0."""
        assert 0 == main(["validate", "--book", *book[1:], "--previous", *book, "--json"])
        findings = json.loads(capsys.readouterr().out)["book"]["findings"]
        assert [("withdrawn-version", "warning", "2.0.0")] == [
            (f["rule"], f["severity"], f["version"]) for f in findings]

    def test_duplicate_versions(self, old: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
        """Two files with one version do not make a book: exit 1, the problem listed."""
        twin = successor({"note": "again"}, "1.0.1")
        first = write(tmp_path, "x.json", twin)
        second = write(tmp_path, "y.json", same_version(twin, "1.0.1", "2027-01-01T00:00:00Z"))
        assert 1 == main(["validate", "--book", old, first, second, "--json"])
        book = json.loads(capsys.readouterr().out)["book"]
        assert book["valid"] is False
        assert ["/version"] == [p["path"] for p in book["problems"]]

    def test_invalid_file_skips_the_book(self, old: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
        """An invalid file is listed, and the book is not checked: exit 1."""
        bad = tmp_path / "bad.json"
        bad.write_text('{"format": 1}')
        assert 1 == main(["validate", "--book", old, str(bad)])
        assert "book     not checked" in capsys.readouterr().out

    def test_files_and_book_together(self, old: str, cut: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """Plain files and a book in one run: each file once, and the book."""
        assert 0 == main(["validate", old, "--book", old, cut, "--json"])
        document = json.loads(capsys.readouterr().out)
        assert [old, cut] == [f["path"] for f in document["files"]]
        assert ["1.0.0", "1.1.0"] == document["book"]["versions"]

    def test_nothing_to_validate(self) -> None:
        """No file and no --book is bad usage: exit 2, one line."""
        result = run("validate")
        assert 2 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines())
        assert "Traceback" not in result.stderr

    def test_policy_needs_book(self, old: str) -> None:
        """--policy without --book would be ignored, so it is bad usage."""
        result = run("validate", old, "--policy", str(UPDATES / "policies" / "lenient.json"))
        assert 2 == result.returncode
        assert "--policy needs --book" in result.stderr

    def test_book_policy(self, old: str, removed: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
        """--policy applies to the book's steps: a lenient one passes the removal."""
        policy = str(UPDATES / "policies" / "lenient.json")
        assert 0 == main(["validate", "--book", old, removed, "--policy", policy])
        assert "  warning: 2.0.0: /styles/anime:" in capsys.readouterr().out

    def test_back_dated_version_fails(self, old: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        """A new version dated before now re-prices calls already made: exit 1."""
        backdated = write(tmp_path, "b.json", successor(
            {"styles": {"flux-dev": {"cost": 10}}}, "1.1.0", when="2025-09-01T00:00:00Z"))
        assert 1 == main(["validate", "--book", old, backdated, "--previous", old, "--json"])
        findings = json.loads(capsys.readouterr().out)["book"]["findings"]
        assert [("no-back-dating", "error", "1.1.0")] == [
            (f["rule"], f["severity"], f["version"]) for f in findings]

    def test_unreadable_book_file(self, old: str) -> None:
        """A --book file that cannot be read: exit 2 (a real process)."""
        result = run("validate", "--book", old, "missing.json")
        assert 2 == result.returncode
        assert "unreadable missing.json" in result.stdout


def same_version(table: ib.PriceTable, version: str, when: str) -> ib.PriceTable:
    """``table`` with another date but the same version (a merge patch cannot keep it)."""
    document = table.to_dict()
    document["effective_from"] = when
    document["version"] = version
    return ib.load_price_table(document)

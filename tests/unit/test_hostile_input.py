"""Hostile input found by review: each gives a clear error of a documented type."""

from __future__ import annotations

import json
import re
import types
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

import imagine_billing as ib
from imagine_billing.adapters.httpx import parse_error
from imagine_billing.pricing.loading import bundled_path


def document() -> dict[str, Any]:
    """A fresh copy of the bundled price document."""
    loaded: dict[str, Any] = json.loads(Path(bundled_path()).read_text())
    return loaded


class TestMappingSources:
    """Documents given as Python mappings."""

    def test_non_string_key_is_a_problem(self) -> None:
        """A style id that is not a string is a problem at its path, not a TypeError."""
        doc = document()
        doc["styles"][1] = {"name": "One", "cost": 1}
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(doc)
        assert [("/styles/1", "keys must be strings (got 1)")] == [
            (p.path, p.message) for p in caught.value.problems]

    def test_any_mapping_is_a_document(self) -> None:
        """Read-only mappings (at any depth) load like dicts."""
        doc = document()
        proxy = types.MappingProxyType({**doc, "styles": types.MappingProxyType(doc["styles"])})
        assert ib.load_price_table() == ib.load_price_table(proxy)

    def test_format_must_be_the_integer(self) -> None:
        """format 1.0 is refused (JSON Schema's const would accept it)."""
        doc = document()
        doc["format"] = 1.0
        with pytest.raises(ib.PriceSchemaError, match=r"/format: must be the integer 1"):
            ib.load_price_table(doc)


class TestTimestamps:
    """effective_from at the edges of the calendar."""

    def test_out_of_range_in_utc(self) -> None:
        """Year 1 with a positive offset cannot be expressed in UTC: a problem, no overflow."""
        doc = document()
        doc["effective_from"] = "0001-01-01T00:00:00+00:01"
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(doc)
        assert ["/effective_from"] == [p.path for p in caught.value.problems]

    def test_lower_case_t_and_z(self) -> None:
        """RFC 3339 allows 't' and 'z'; the time is the same as with 'T' and 'Z'."""
        doc = document()
        doc["effective_from"] = "2025-07-01t00:00:00z"
        assert ib.load_price_table().digest == ib.load_price_table(doc).digest


class TestHugeAndDeep:
    """Numbers past Python's digit limit, nesting past its stack."""

    def test_integer_of_5000_digits_in_a_table_file(self, tmp_path: Path) -> None:
        """An unreadable number is a PriceSourceError."""
        path = tmp_path / "t.json"
        path.write_text('{"format": 1' + "0" * 5000 + "}")
        with pytest.raises(ib.PriceSourceError, match="4300 digits"):
            ib.load_price_table(path)

    def test_integer_of_5000_digits_in_a_workload(self, tmp_path: Path) -> None:
        """load_calls names the file."""
        path = tmp_path / "w.json"
        path.write_text('[{"style": "anime", "count": 1' + "0" * 5000 + "}]")
        with pytest.raises(ib.BadRecordError, match="4300 digits"):
            ib.load_calls(path)

    def test_usage_log_lines(self, tmp_path: Path) -> None:
        """A huge count, a deep JSON line and out-of-range times are skipped by reason."""
        path = tmp_path / "u.jsonl"
        lines = [
            '{"timestamp": "2026-01-01T00:00:00Z", "style": "anime", "count": 1}',
            "[" * 30_000 + "]" * 30_000,  # deep, in a line under the 64 Ki bound
            '{"timestamp": "0001-01-01T00:00:00+01:00", "style": "anime", "count": 1}',
            '{"timestamp": "9999-12-31T23:59:59Z", "style": "anime", "count": 2}',
        ]
        path.write_text("\n".join(lines) + "\n")
        totals = ib.price_usage(ib.read_usage(path, skip_bad=True), ib.load_price_table())
        assert (15, {"bad-json": 1, "bad-timestamp": 1}) == (totals.total, dict(totals.skipped))

    def test_csv_count_of_many_digits(self, tmp_path: Path) -> None:
        """A CSV count longer than 16 digits is a bad count."""
        path = tmp_path / "u.csv"
        path.write_text("timestamp,style,count\n2026-01-01T00:00:00Z,anime," + "9" * 5000 + "\n")
        with pytest.raises(ib.BadRecordError, match="count"):
            ib.price_usage(ib.read_usage(path), ib.load_price_table())


def nested(depth: int) -> str:
    """JSON text of arrays nested ``depth`` deep."""
    return "[" * depth + "]" * depth


class TestDepthsPastTheCap:
    """Nesting between the 64-level cap and the parser's own limit."""

    @pytest.mark.parametrize("depth", [62, 63, 64, 65, 200, 600])
    def test_file_with_a_deep_value(self, tmp_path: Path, depth: int) -> None:
        """A deep value under an unknown key: the key is named, and past 64 levels the cut."""
        text = json.dumps(document())[:-1] + ', "extra": ' + nested(depth) + "}"
        path = tmp_path / "t.json"
        path.write_text(text)
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(path)
        cut = ["/extra" + "/0" * 63] if depth >= 64 else []
        assert sorted(["/extra", *cut]) == sorted(p.path for p in caught.value.problems)

    def test_near_the_parser_limit(self, tmp_path: Path) -> None:
        """Nesting as deep as the parser can go is a PriceSchemaError (read or not)."""
        for depth in range(900, 1001, 20):
            path = tmp_path / f"t{depth}.json"
            path.write_text('{"format": 1, "extra": ' + nested(depth) + "}")
            with pytest.raises(ib.PriceSchemaError):
                ib.load_price_table(path)

    @pytest.mark.parametrize("depth", [63, 64, 65, 500, 5000])
    def test_mapping_with_a_deep_value(self, depth: int) -> None:
        """A mapping document nested deep is cut at 64 levels, whatever the depth."""
        deep: list[Any] = []
        for _ in range(depth - 1):
            deep = [deep]
        doc = document()
        doc["styles"]["anime"]["name"] = deep
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(doc)
        paths = [p.path for p in caught.value.problems]
        assert "/styles/anime/name" in paths
        assert (depth >= 62) == ("/styles/anime/name" + "/0" * 61 in paths)

    def test_deep_override_patch(self) -> None:
        """A merge patch nested 3000 deep is refused as a problem."""
        patch: dict[str, Any] = {}
        node = patch
        for _ in range(3000):
            node["x"] = {}
            node = node["x"]
        with pytest.raises(ib.PriceSchemaError):
            ib.load_price_table().with_overrides(patch, version="1.0.1")


class TestLoneSurrogates:
    """Lone surrogate escapes (JSON allows "\\ud800"; Unicode text does not)."""

    @pytest.mark.parametrize(
        ("where", "escape"),
        [
            (["styles", "anime", "name"], "\\ud800"),
            (["operations", "upscale", "name"], "\\udbff"),
            (["note"], "\\udc00"),
            (["source"], "\\udfff"),
        ],
    )
    def test_in_a_file(self, tmp_path: Path, where: list[str], escape: str) -> None:
        """A lone surrogate in any text of a file is a problem at its path."""
        doc = document()
        target = doc
        for part in where[:-1]:
            target = target[part]
        target[where[-1]] = "x" + chr(int(escape[2:], 16))
        path = tmp_path / "t.json"
        path.write_text(json.dumps(doc), encoding="ascii")
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(path)
        assert [
            ("/" + "/".join(where), f"not valid Unicode text (a lone surrogate {escape})")
        ] == [(p.path, p.message) for p in caught.value.problems]

    def test_a_pair_is_one_character(self, tmp_path: Path) -> None:
        """A surrogate pair escape is an astral character: valid text."""
        path = tmp_path / "t.json"
        doc = document()
        del doc["note"]
        text = json.dumps(doc)[:-1] + ', "note": "ok \\ud83d\\ude00"}'
        path.write_text(text)
        assert "ok \U0001f600" == ib.load_price_table(path).note

    def test_in_a_key(self) -> None:
        """A lone surrogate in a style id is one problem at that key, shown as an escape."""
        doc = document()
        doc["styles"]["\ud800"] = {"name": "S", "cost": 1}
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(doc)
        assert [("/styles/\ud800", "key not valid Unicode text (a lone surrogate \\ud800)")] == [
            (p.path, p.message) for p in caught.value.problems
        ]


class TestOthers:
    """Smaller findings."""

    def test_price_book_of_strings(self) -> None:
        """A book of non-tables is a TypeError naming the type."""
        with pytest.raises(TypeError, match="got str"):
            ib.PriceBook(["x"])  # type: ignore[list-item]

    def test_token_rate_with_a_huge_exponent(self) -> None:
        """A price of 1e999999999 is refused at once instead of computing for ever."""
        with pytest.raises(ValueError, match="between"):
            ib.TokenRate(1, "1e999999999", "USD")  # type: ignore[arg-type]

    def test_api_error_code_with_a_unicode_digit(self) -> None:
        """A code of '²' is no code, not a ValueError."""
        assert parse_error(httpx.Response(400, json={"code": "²"})).code is None

    def test_usage_record_naive_and_aware(self) -> None:
        """In-memory records: an aware time prices, a naive one is an error with its line."""
        table = ib.load_price_table()
        ok = ib.price_usage([("anime", 1, datetime(2026, 1, 1, tzinfo=UTC))], table)
        assert 5 == ok.total
        with pytest.raises(ib.BadRecordError, match="timezone-aware"):
            ib.price_usage([("anime", 1, datetime(2026, 1, 1))], table)


MISSING_SECONDS = "2025-07-02T10:00:Z"
"""A timestamp with its seconds missing: an IndexError in the shared reader, once."""


class TestMissingSeconds:
    """Every place that reads a timestamp refuses one without seconds, in its own way."""

    def test_price_document(self) -> None:
        doc = document()
        doc["effective_from"] = MISSING_SECONDS
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(doc)
        assert ["/effective_from"] == [p.path for p in caught.value.problems]

    @pytest.mark.parametrize("argv", [
        ["estimate", "anime", "--at", MISSING_SECONDS],
        ["ledger", "--db", "{db}", "entries", "--since", MISSING_SECONDS],
        ["forecast", "--db", "{db}", "--now", MISSING_SECONDS],
        ["budget", "--db", "{db}", "status", "--now", MISSING_SECONDS],
    ])
    def test_command_line_options(self, argv: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A usage error (exit 2) that quotes the text, never a traceback."""
        from imagine_billing.cli import main

        argv = [arg.format(db=tmp_path / "l.db") for arg in argv]
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert 2 == exited.value.code
        assert MISSING_SECONDS in capsys.readouterr().err

    def test_price_log_skips_it(self, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
        """With --skip-bad the line is a bad timestamp, counted; the good line is priced."""
        from imagine_billing.cli import main

        log = tmp_path / "log.csv"
        log.write_text(f"timestamp,style,count\n{MISSING_SECONDS},anime,1\n"
                       "2025-07-02T10:00:00Z,anime,2\n")
        assert 0 == main(["price-log", str(log), "--skip-bad", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert 10 == out["total"]
        assert {"bad-timestamp": 1} == out["skipped"]

    def test_ledger_import(self, tmp_path: Path) -> None:
        line = {"id": 1, "kind": "credit", "key": "k", "tokens": 5, "at": MISSING_SECONDS,
                "fingerprint": "", "hash": ""}
        with pytest.raises(ib.BadRecordError, match=r"<jsonl>:1: .*not RFC 3339"):
            ib.Ledger.from_jsonl([json.dumps(line)], path=tmp_path / "l.db")
        assert not (tmp_path / "l.db").exists()


class TestNotJson:
    """Mapping documents and override patches holding values JSON cannot: each a problem at
    its JSON pointer (PriceSchemaError), not ValueError, InvalidOperation or TypeError."""

    @pytest.mark.parametrize(("value", "message"), [
        (10**5000, "a number of 5001 digits is out of range"),
        (-(10**5000), "a number of 5001 digits is out of range"),
        (Decimal("NaN"), "got Decimal('NaN'), a Decimal"),
        (1 + 2j, "got (1+2j), a complex"),
        (Fraction(10**5000, 3), "got a Fraction, a Fraction"),
    ], ids=["huge", "huge-negative", "decimal-nan", "complex", "huge-fraction"])
    def test_in_a_document_and_a_patch(self, value: object, message: str) -> None:
        doc = document()
        doc["styles"]["anime"]["cost"] = value
        with pytest.raises(ib.PriceSchemaError, match=re.escape(message)) as caught:
            ib.load_price_table(doc)
        assert ["/styles/anime/cost"] == [p.path for p in caught.value.problems]
        with pytest.raises(ib.PriceSchemaError, match=re.escape(message)) as caught:
            ib.load_price_table().with_overrides({"styles": {"anime": {"cost": value}}},
                                                 version="1.0.1")
        assert ["/styles/anime/cost"] == [p.path for p in caught.value.problems]


class TestFileSize:
    """A JSON document larger than MAX_FILE_BYTES (or endless, like /dev/zero) is an error
    of the reader's own type that says so, read without holding more than the limit."""

    @staticmethod
    def padded(tmp_path: Path, text: str, size: int) -> Path:
        """``text`` followed by spaces up to ``size`` bytes: JSON whatever the size."""
        path = tmp_path / "big.json"
        path.write_bytes(text.encode() + b" " * (size - len(text.encode())))
        return path

    def test_price_table_at_and_past_the_limit(self, tmp_path: Path) -> None:
        from imagine_billing._checks import MAX_FILE_BYTES

        text = json.dumps(document())
        table = ib.load_price_table(self.padded(tmp_path, text, MAX_FILE_BYTES))
        assert 15 == table.cost("flux-dev")
        with pytest.raises(ib.PriceSourceError, match="larger than 16 MiB"):
            ib.load_price_table(self.padded(tmp_path, text, MAX_FILE_BYTES + 1))

    def test_workload(self, tmp_path: Path) -> None:
        from imagine_billing._checks import MAX_FILE_BYTES

        text = json.dumps([{"style": "anime"}])
        assert 1 == len(ib.load_calls(self.padded(tmp_path, text, MAX_FILE_BYTES)))
        with pytest.raises(ib.BadRecordError, match="larger than 16 MiB"):
            ib.load_calls(self.padded(tmp_path, text, MAX_FILE_BYTES + 1))

    def test_policy(self, tmp_path: Path) -> None:
        from imagine_billing._checks import MAX_FILE_BYTES

        with pytest.raises(ib.PolicyError, match="larger than 16 MiB"):
            ib.load_policy(self.padded(tmp_path, "{}", MAX_FILE_BYTES + 1))

    @pytest.mark.parametrize("argv", [
        ["validate", "/dev/zero"],
        ["estimate", "--table", "/dev/zero", "anime"],
        ["diff", "--policy", "/dev/zero", "{table}", "{table}"],
        ["diff", "--workload", "/dev/zero", "{table}", "{table}"],
    ])
    def test_dev_zero_on_the_command_line(self, argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
        """Exit 2 naming the file, instead of reading until memory runs out."""
        from imagine_billing.cli import main

        argv = [arg.format(table=bundled_path()) for arg in argv]
        try:
            code = main(argv)
        except SystemExit as exited:
            code = exited.code
        assert 2 == code
        err = capsys.readouterr()
        assert "/dev/zero" in err.out + err.err
        assert "larger than 16 MiB" in err.out + err.err

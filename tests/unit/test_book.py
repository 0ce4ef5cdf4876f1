"""PriceBook: versions of one API's table in force one after another."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import imagine_billing as ib

T0 = datetime(2025, 7, 1, tzinfo=UTC)


def version(table: ib.PriceTable, number: str, start: datetime, **costs: int) -> ib.PriceTable:
    """A later version of ``table`` with some costs changed."""
    patch = {
        "effective_from": start.isoformat(),
        "styles": {style.replace("_", "-"): {"cost": c} for style, c in costs.items()},
    }
    return table.with_overrides(patch, version=number)


class TestAt:
    """book.at(when) is the table in force at that moment."""

    def test_picks_the_version_in_force(self, table: ib.PriceTable) -> None:
        """Before, at and after each boundary."""
        v2 = version(table, "2.0.0", T0 + timedelta(days=30), flux_dev=20)
        v3 = version(table, "3.0.0", T0 + timedelta(days=60), flux_dev=25)
        book = ib.PriceBook([v3, table, v2])
        assert [table, v2, v3] == list(book.tables)
        assert table == book.at(T0)
        assert table == book.at(T0 + timedelta(days=30) - timedelta(microseconds=1))
        assert v2 == book.at(T0 + timedelta(days=30))
        assert v3 == book.at(T0 + timedelta(days=365))
        assert v3 == book.latest

    def test_before_the_first_table(self, table: ib.PriceTable) -> None:
        """A moment before the first version raises a BillingError naming both dates."""
        book = ib.PriceBook([table])
        with pytest.raises(ib.NoPriceTableError, match="2025-07-01T00:00:00Z") as caught:
            book.at(T0 - timedelta(seconds=1))
        assert isinstance(caught.value, ib.BillingError)

    def test_naive_datetime_refused(self, table: ib.PriceTable) -> None:
        """A naive datetime is ambiguous and refused."""
        with pytest.raises(ValueError, match="timezone-aware"):
            ib.PriceBook([table]).at(datetime(2026, 1, 1))

    def test_other_offsets_are_compared_as_instants(self, table: ib.PriceTable) -> None:
        """A moment given with +02:00 is the same instant in UTC."""
        v2 = version(table, "2.0.0", T0 + timedelta(days=1), flux_dev=20)
        book = ib.PriceBook([table, v2])
        from datetime import timezone

        plus2 = timezone(timedelta(hours=2))
        assert v2 == book.at(datetime(2025, 7, 2, 2, 0, tzinfo=plus2))
        assert table == book.at(datetime(2025, 7, 2, 1, 59, tzinfo=plus2))

    def test_scheduled_versions_are_allowed(self, table: ib.PriceTable) -> None:
        """A version dated far in the future is kept and used only from its date."""
        future = version(table, "9.0.0", datetime(2099, 1, 1, tzinfo=UTC), anime=7)
        book = ib.PriceBook([table, future])
        assert 5 == book.at(datetime(2026, 11, 25, tzinfo=UTC)).cost("anime")
        assert 7 == book.at(datetime(2099, 1, 1, tzinfo=UTC)).cost("anime")


class TestRefused:
    """Books that cannot be one API's history are refused."""

    def test_same_effective_from(self, table: ib.PriceTable) -> None:
        """Two versions taking effect at the same moment are ambiguous."""
        twin = table.with_overrides({"styles": {"anime": {"cost": 6}}}, version="1.1.0")
        with pytest.raises(ib.PriceSchemaError, match="both take effect"):
            ib.PriceBook([table, twin])

    def test_same_version(self, table: ib.PriceTable) -> None:
        """The same version number twice is refused."""
        other = version(table, "1.1.0", T0 + timedelta(days=1), anime=6)
        again = version(table, "1.1.0", T0 + timedelta(days=2), anime=7)
        with pytest.raises(ib.PriceSchemaError, match=r"version 1\.1\.0 appears twice"):
            ib.PriceBook([other, again])

    def test_different_api(self, table: ib.PriceTable) -> None:
        """Tables of different APIs do not make one book."""
        other = table.with_overrides(
            {"api": "other-api", "effective_from": "2026-01-01T00:00:00Z"}, version="2.0.0"
        )
        with pytest.raises(ib.PriceSchemaError, match="one API"):
            ib.PriceBook([table, other])

    def test_different_api_once_per_table(self, table: ib.PriceTable) -> None:
        """One table of another API between two of this one is one problem, not one per pair."""
        patch = {"api": "other-api", "effective_from": "2026-01-01T00:00:00Z"}
        other = table.with_overrides(patch, version="2.0.0")
        third = version(table, "3.0.0", datetime(2027, 1, 1, tzinfo=UTC), anime=6)
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.PriceBook([table, other, third])
        assert [
            "table 2.0.0 is for 'other-api', table 1.0.0 for 'imagine-api': "
            "a book holds the versions of one API",
        ] == [p.message for p in caught.value.problems]

    def test_empty(self) -> None:
        """A book needs a table."""
        with pytest.raises(ib.PriceSchemaError, match="at least one table"):
            ib.PriceBook([])


class TestLoadPriceBook:
    """load_price_book reads several files."""

    def test_loads_in_any_order(self, table: ib.PriceTable, tmp_path: Path) -> None:
        """Files given newest first still give a book sorted by date."""
        v2 = version(table, "2.0.0", T0 + timedelta(days=30), flux_dev=20)
        (tmp_path / "v1.json").write_text(table.to_json())
        (tmp_path / "v2.json").write_text(v2.to_json())
        book = ib.load_price_book(tmp_path / "v2.json", tmp_path / "v1.json")
        assert ["1.0.0", "2.0.0"] == [t.version for t in book.tables]
        assert "imagine-api" == book.api

    def test_reports_problems_of_every_file(self, tmp_path: Path) -> None:
        """Two bad files give the problems of both, with their file names."""
        (tmp_path / "a.json").write_text('{"format": 1}')
        (tmp_path / "b.json").write_text('{"format": 2}')
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_book(tmp_path / "a.json", tmp_path / "b.json")
        sources = {p.source for p in caught.value.problems}
        assert {str(tmp_path / "a.json"), str(tmp_path / "b.json")} == sources

    def test_unreadable_file_is_a_source_error(self, tmp_path: Path) -> None:
        """A missing file makes the whole book unreadable (PriceSourceError)."""
        with pytest.raises(ib.PriceSourceError):
            ib.load_price_book(tmp_path / "missing.json")

    def test_unreadable_files_are_named(self, table: ib.PriceTable, tmp_path: Path) -> None:
        """Each problem of an unreadable file in a book names that file."""
        good = tmp_path / "good.json"
        good.write_text(table.to_json())
        missing, gone = tmp_path / "missing.json", tmp_path / "gone.json"
        with pytest.raises(ib.PriceSourceError) as caught:
            ib.load_price_book(good, missing, gone)
        assert [str(missing), str(gone)] == [p.source for p in caught.value.problems]
        assert f"{missing}: (document): cannot read the file" in str(caught.value)

"""A database backup's proof: the engine checks' output read as row counts, and restored counts compared with
the counts taken before and after the dump."""

from __future__ import annotations

import pytest

from mist_core.backups.subjects import compare_counts, parse_counts
from mist_core.errors import MistError


def test_each_engines_check_output_reads_as_counts() -> None:
    assert parse_counts("public.notes|250\npublic.tags|2\n") == {"public.notes": 250, "public.tags": 2}
    assert parse_counts("notes\t250\ntags\t2\n") == {"notes": 250, "tags": 2}
    assert parse_counts("1234\n") == {"(keys)": 1234}
    assert parse_counts("") == {}
    # A table whose name holds the separator keeps it: the count is after the last one.
    assert parse_counts("public.a|b|7\n") == {"public.a|b": 7}


def test_a_check_that_prints_something_else_is_an_error_naming_it() -> None:
    with pytest.raises(MistError, match="'ERROR: nope', not a count"):
        parse_counts("ERROR: nope\n")


def test_restored_counts_match_when_each_lies_between_the_two_counts_of_the_backup() -> None:
    recorded = {"notes": [250, 250], "events": [10, 14]}
    assert compare_counts(recorded, {"notes": 250, "events": 12}) == ""
    assert compare_counts(recorded, {"notes": 250, "events": 10}) == ""
    assert compare_counts(recorded, {"notes": 249, "events": 15}) == (
        "events has 15 rows, the backup 10 to 14; notes has 249 rows, the backup 250"
    )


def test_missing_and_extra_tables_are_differences_unless_made_or_dropped_during_the_dump() -> None:
    recorded = {"notes": [1, 1]}
    assert compare_counts(recorded, {}) == "notes is missing"
    assert compare_counts(recorded, {"notes": 1, "new": 3}) == "not in the backup: new"
    assert compare_counts(recorded, {"notes": 1, "new": 3}, ["new"]) == ""


def test_many_differences_are_cut_to_the_first_few() -> None:
    recorded = {f"t{i}": [1, 1] for i in range(9)}
    said = compare_counts(recorded, {})
    assert said.count("is missing") == 5 and said.endswith("and 4 more")


def test_a_mysql_dump_names_no_database_so_it_restores_into_another_one() -> None:
    from mist_core.services import Credentials, engine_spec

    creds = Credentials("main", "pw", "main", "root-pw")
    for engine in ("mysql", "mariadb"):
        spec = engine_spec(engine)
        dump = spec.dump_command(creds, "db-host")
        assert "--databases" not in dump.argv and dump.argv[-1] == "main"
        restore = spec.restore_command(Credentials("copy", "pw", "copy", "root-pw"), "db-host")
        assert restore.argv[-2:] == ["-D", "copy"]
        assert "root-pw" not in dump.argv + restore.argv and dump.env == {"MYSQL_PWD": "root-pw"}

"""The dictionary's rules, one by one: ``Table.clean`` and the column kinds, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backend import dictionary
from backend.dictionary import (
    DEPARTMENTS,
    HIRED_EMPLOYEES,
    JOBS,
    MAX_ID,
    Integer,
    Reason,
    RuleViolation,
    Text,
    Timestamp,
)


def employee(**changes: Any) -> dict[str, Any]:
    """A valid hired_employees row as a JSON caller sends it, with ``changes`` applied."""
    row: dict[str, Any] = {
        "id": 1,
        "name": "Ada Lovelace",
        "datetime": "2021-07-27T16:02:08Z",
        "department_id": 2,
        "job_id": 3,
    }
    row.update(changes)
    return row


def reasons_of(raw: Any, table: dictionary.Table = HIRED_EMPLOYEES) -> list[tuple[str | None, str]]:
    """Clean ``raw`` and return its reasons as (field, code) pairs; the row must be rejected."""
    row, reasons = table.clean(raw)
    assert row is None
    return [(reason.field, reason.code) for reason in reasons]


def violation(kind: dictionary.Kind, value: Any) -> str:
    with pytest.raises(RuleViolation) as caught:
        kind.clean(value)
    return caught.value.code


# --- a valid row ---------------------------------------------------------------------------


def test_valid_row_is_cleaned_to_python_values() -> None:
    row, reasons = HIRED_EMPLOYEES.clean(employee())
    assert reasons == []
    assert row == {
        "id": 1,
        "name": "Ada Lovelace",
        "datetime": datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC),
        "department_id": 2,
        "job_id": 3,
    }


def test_csv_row_of_strings_is_cleaned_to_integers_and_trimmed_text() -> None:
    raw = {
        "id": " 12 ",
        "name": "  Grace Hopper\t",
        "datetime": " 2021-07-27 16:02:08 ",
        "department_id": "2",
        "job_id": "+3",
    }
    row, reasons = HIRED_EMPLOYEES.clean(raw)
    assert reasons == []
    assert row == {
        "id": 12,
        "name": "Grace Hopper",
        "datetime": datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC),
        "department_id": 2,
        "job_id": 3,
    }


def test_clean_does_not_modify_the_raw_row() -> None:
    raw = employee(name="  padded  ", id="7")
    HIRED_EMPLOYEES.clean(raw)
    assert raw == employee(name="  padded  ", id="7")


@pytest.mark.parametrize(
    ("table", "raw", "expected"),
    [
        (DEPARTMENTS, {"id": 1, "department": " Sales "}, {"id": 1, "department": "Sales"}),
        (JOBS, {"id": "4", "job": "VP Sales"}, {"id": 4, "job": "VP Sales"}),
    ],
    ids=["departments", "jobs"],
)
def test_departments_and_jobs_rows_are_cleaned(
    table: dictionary.Table, raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert table.clean(raw) == (expected, [])


# --- required ------------------------------------------------------------------------------


@pytest.mark.parametrize("column", HIRED_EMPLOYEES.column_names)
def test_required_when_the_key_is_missing(column: str) -> None:
    raw = employee()
    del raw[column]
    assert reasons_of(raw) == [(column, "required")]


@pytest.mark.parametrize("column", HIRED_EMPLOYEES.column_names)
def test_required_when_the_value_is_none(column: str) -> None:
    assert reasons_of(employee(**{column: None})) == [(column, "required")]


@pytest.mark.parametrize("blank", ["", " ", "   \t ", "\n"], ids=repr)
@pytest.mark.parametrize("column", HIRED_EMPLOYEES.column_names)
def test_required_when_the_value_is_blank_after_trimming(column: str, blank: str) -> None:
    assert reasons_of(employee(**{column: blank})) == [(column, "required")]


def test_required_reason_message() -> None:
    _, reasons = DEPARTMENTS.clean({"id": 1})
    assert reasons == [Reason("department", "required", "is required")]


def test_empty_object_reports_every_column_as_required() -> None:
    assert reasons_of({}) == [(name, "required") for name in HIRED_EMPLOYEES.column_names]


# --- integers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [True, False, 1.0, 2.5, "abc", "1.0", "1e3", "0x10", "1 2", [1], {"id": 1}, (1,)],
    ids=repr,
)
def test_integer_invalid_type(value: Any) -> None:
    assert violation(Integer(), value) == "invalid_type"


@pytest.mark.parametrize("column", ["id", "department_id", "job_id"])
def test_integer_columns_reject_a_boolean_as_invalid_type(column: str) -> None:
    assert reasons_of(employee(**{column: True})) == [(column, "invalid_type")]


def test_integer_invalid_type_messages_name_the_json_type() -> None:
    messages = {}
    for value in (True, 1.5, [1], {"a": 1}, "abc"):
        with pytest.raises(RuleViolation) as caught:
            Integer().clean(value)
        messages[repr(value)] = caught.value.message
    assert messages == {
        "True": "must be an integer, got boolean",
        "1.5": "must be an integer, got number",
        "[1]": "must be an integer, got array",
        "{'a': 1}": "must be an integer, got object",
        "'abc'": "must be an integer, got 'abc'",
    }


@pytest.mark.parametrize("value", [0, -1, "0", "-1", " -5 ", -(2**40)], ids=repr)
def test_integer_not_positive(value: Any) -> None:
    assert violation(Integer(), value) == "not_positive"


@pytest.mark.parametrize("value", [2**31, str(2**31), 2**63, "99999999999999999999"], ids=repr)
def test_integer_out_of_range(value: Any) -> None:
    assert violation(Integer(), value) == "out_of_range"


def test_integer_with_more_digits_than_python_converts_is_out_of_range() -> None:
    # int() refuses strings of more than 4300 digits: that must be a rule, not a crash.
    assert violation(Integer(), "9" * 5000) == "out_of_range"
    assert violation(Integer(), "-" + "9" * 5000) == "not_positive"
    assert reasons_of(employee(id="1" * 5000)) == [("id", "out_of_range")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (MAX_ID, MAX_ID),
        ("1", 1),
        (" 42 ", 42),
        ("+7", 7),
        ("007", 7),
        (str(MAX_ID), MAX_ID),
    ],
    ids=repr,
)
def test_integer_accepts_positive_32_bit_values(value: Any, expected: int) -> None:
    assert Integer().clean(value) == expected


def test_integer_out_of_range_message_names_the_limit() -> None:
    with pytest.raises(RuleViolation) as caught:
        Integer().clean(2**31)
    assert caught.value.message == f"must be at most {MAX_ID}, got {2**31}"


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 1.5, True, ["Sales"], {"name": "x"}], ids=repr)
def test_text_invalid_type(value: Any) -> None:
    assert violation(Text(), value) == "invalid_type"


def test_text_column_rejects_an_integer() -> None:
    assert reasons_of({"id": 1, "department": 5}, DEPARTMENTS) == [("department", "invalid_type")]


def test_text_of_255_characters_is_accepted() -> None:
    assert Text(max_length=255).clean("x" * 255) == "x" * 255


def test_text_of_256_characters_is_too_long() -> None:
    with pytest.raises(RuleViolation) as caught:
        Text(max_length=255).clean("x" * 256)
    assert (caught.value.code, caught.value.message) == (
        "too_long",
        "must be at most 255 characters, got 256",
    )


def test_text_is_trimmed_before_its_length_is_measured() -> None:
    assert Text(max_length=255).clean("  " + "x" * 255 + "  ") == "x" * 255
    assert violation(Text(max_length=255), " " + "x" * 256 + " ") == "too_long"


def test_text_length_counts_characters_not_bytes() -> None:
    assert Text(max_length=255).clean("é" * 255) == "é" * 255


@pytest.mark.parametrize("value", ["Bo \ud800", "\udfff", "A\ud800B\u200b"], ids=repr)
def test_text_with_an_unpaired_surrogate_is_invalid_type(value: str) -> None:
    # Neither database takes an unpaired surrogate: it is not UTF-8.
    assert violation(Text(), value) == "invalid_type"
    assert reasons_of(employee(name=value)) == [("name", "invalid_type")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" José 😀 中文 ", "José 😀 中文"),
        ("\u200bAda\u200b", "Ada"),  # zero-width spaces (Cf) trimmed at both ends
        ("\ufeffAda Lovelace", "Ada Lovelace"),  # a byte-order mark (Cf) pasted in front
        ("\u00a0Ada\u3000", "Ada"),  # no-break and ideographic spaces (Zs)
        ("\u2028Ada\u2029", "Ada"),  # line and paragraph separators
        ("Ada\x85\t\r\n", "Ada"),  # control characters that are spaces (strip's)
        (" \u200b\u200e Ada \ufeff\n ", "Ada"),  # any mix of them, at both ends
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # a zero-width joiner inside stays
        ("क्\u200dष", "क्\u200dष"),  # as in Indic scripts
        ("Ada\u200bLovelace", "Ada\u200bLovelace"),  # format characters inside stay
        ("Ada\u00a0Lovelace", "Ada\u00a0Lovelace"),
        ("\u200b" + "x" * 255 + "\ufeff", "x" * 255),  # the length is measured trimmed
    ],
    ids=repr,
)
def test_text_is_trimmed_of_spaces_and_format_characters_at_both_ends(
    value: str, expected: str
) -> None:
    assert Text().clean(value) == expected
    row, reasons = HIRED_EMPLOYEES.clean(employee(name=value))
    assert (reasons, row and row["name"]) == ([], expected)


@pytest.mark.parametrize(
    "value",
    ["\u200b", "\ufeff", "\u200b\ufeff\u200b", "\u200d", "\x00", "\x1b", " \u00a0\u3000\u2028 ",
     "\u200b \x00\t\u200e\u2060"],
    ids=repr,
)  # fmt: skip
def test_text_of_only_spaces_format_and_control_characters_is_required(value: str) -> None:
    assert violation(Text(), value) == "required"
    for table, column in [(DEPARTMENTS, "department"), (JOBS, "job"), (HIRED_EMPLOYEES, "name")]:
        raw = {"id": 1, "department": "d", "job": "j", **employee(), column: value}
        assert reasons_of({k: raw[k] for k in table.column_names}, table) == [(column, "required")]


@pytest.mark.parametrize("column", ["id", "datetime", "department_id", "job_id"])
def test_other_columns_of_only_format_characters_are_required(column: str) -> None:
    assert reasons_of(employee(**{column: "\u200b\ufeff"})) == [(column, "required")]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("A\x00B", "'\\x00' at character 2"),
        ("Ada\nLovelace", "'\\n' at character 4"),
        ("Ada\tLovelace", "'\\t' at character 4"),
        ("Ada\r\nLovelace", "'\\r' at character 4"),
        ("\u200bRobert\x1b[31m", "'\\x1b' at character 7"),  # an ANSI escape, after trimming
        ("Bob\x7f", "'\\x7f' at character 4"),  # at an end, it is refused too, never cut
        ("Ada\x00", "'\\x00' at character 4"),
        ("\x1b\x7fAda\x85\t\r\n", "'\\x1b' at character 1"),
        (" \u200b\u200e\x00 Ada \ufeff\n ", "'\\x00' at character 1"),
        ("Ana\x85María", "'\\x85' at character 4"),  # C1's next line
        ("Zoë\x9fX", "'\\x9f' at character 4"),
    ],
    ids=repr,
)
def test_text_holding_a_control_character_is_refused(value: str, shown: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        Text().clean(value)
    assert caught.value.code == "control_character"
    assert caught.value.message == f"must not hold a control character, got {shown}"
    assert reasons_of(employee(name=value)) == [("name", "control_character")]


def test_printable_text_takes_the_fast_path_and_is_only_stripped() -> None:
    # The common case: str.strip() and str.isprintable(), nothing per character in Python.
    assert dictionary.trim("  Grace Hopper\t") == "Grace Hopper"
    assert dictionary.trim("José 中文") == "José 中文"
    assert dictionary.trim("\u200b\x00") == ""


def test_control_character_is_a_documented_reason_code() -> None:
    assert "control_character" in dictionary.REASON_CODES
    assert "`control_character`" in dictionary.as_markdown()


@pytest.mark.parametrize(
    ("table", "column"), [(DEPARTMENTS, "department"), (JOBS, "job"), (HIRED_EMPLOYEES, "name")]
)
def test_every_text_column_is_limited_to_255_characters(
    table: dictionary.Table, column: str
) -> None:
    base = {"id": 1, "department": "d", "job": "j", **employee()}
    raw = {name: base[name] for name in table.column_names}
    raw[column] = "y" * 256
    assert reasons_of(raw, table) == [(column, "too_long")]
    raw[column] = "y" * 255
    row, reasons = table.clean(raw)
    assert (reasons, row[column]) == ([], "y" * 255)


# --- datetimes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2021-07-27",
        "2021/01/01 10:00",
        "not a date",
        "2021-13-01T10:00:00",
        "2021-02-30T10:00:00",
        "2021-01-01T25:00:00",
        "2021-01-01T10:60:00",
        "2021-07-27T16",
        "27/07/2021 16:02",
        "2021-07-27T16:02:08 UTC",
        "2021-07-27T16:02:08+24:00",
        "2021-07-27T16:02:08.1234567Z",
    ],
)
def test_invalid_datetime(value: str) -> None:
    assert violation(Timestamp(), value) == "invalid_datetime"


@pytest.mark.parametrize("value", [1627401728, 1.5, True, ["2021-07-27T16:02:08Z"]], ids=repr)
def test_datetime_of_the_wrong_type(value: Any) -> None:
    assert violation(Timestamp(), value) == "invalid_type"


def test_datetime_that_leaves_the_calendar_when_converted_to_utc_is_invalid() -> None:
    # Valid local times whose UTC equivalent is before year 1 or after year 9999.
    assert violation(Timestamp(), "0001-01-01T00:00:00+01:00") == "invalid_datetime"
    assert violation(Timestamp(), "9999-12-31T23:59:59-01:00") == "invalid_datetime"
    assert reasons_of(employee(datetime="0001-01-01T00:30:00+01:00")) == [
        ("datetime", "invalid_datetime")
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-07-27T16:02:08Z", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27T16:02:08z", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27T18:02:08+02:00", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27T11:02:08-0500", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27T21:02:08+05", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27T21:32:08+05:30", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-28T01:02:08+09:00", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27T16:02:08", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27 16:02:08", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
        ("2021-07-27 16:02", datetime(2021, 7, 27, 16, 2, tzinfo=UTC)),
        ("2021-07-27T16:02:08.5Z", datetime(2021, 7, 27, 16, 2, 8, 500000, tzinfo=UTC)),
        ("2021-07-27T16:02:08.123456Z", datetime(2021, 7, 27, 16, 2, 8, 123456, tzinfo=UTC)),
        ("  2021-07-27T16:02:08Z  ", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)),
    ],
)
def test_datetime_is_converted_to_utc(value: str, expected: datetime) -> None:
    cleaned = Timestamp().clean(value)
    assert cleaned == expected
    assert cleaned.utcoffset() is not None
    assert cleaned.utcoffset().total_seconds() == 0
    assert cleaned.tzinfo is UTC


def test_offset_crossing_midnight_moves_the_date() -> None:
    assert Timestamp().clean("2021-12-31T23:30:00-01:00") == datetime(2022, 1, 1, 0, 30, tzinfo=UTC)


def test_invalid_datetime_message_shows_an_example_and_the_value() -> None:
    with pytest.raises(RuleViolation) as caught:
        Timestamp().clean("2021/01/01 10:00")
    assert caught.value.message == (
        "must be an ISO 8601 date and time such as 2021-07-27T16:02:08Z, got '2021/01/01 10:00'"
    )


# --- unknown fields, non-object rows, several reasons ---------------------------------------


def test_unknown_field_is_reported_even_when_every_column_is_valid() -> None:
    _, reasons = HIRED_EMPLOYEES.clean(employee(salary=100))
    assert reasons == [Reason("salary", "unknown_field", "is not a column of hired_employees")]


def test_several_unknown_fields_are_each_reported_in_order() -> None:
    raw = {"extra": 1, **employee(), "column_6": "x", "Name": "y"}
    assert reasons_of(raw) == [
        ("extra", "unknown_field"),
        ("column_6", "unknown_field"),
        ("Name", "unknown_field"),
    ]


def test_unknown_field_with_a_non_string_key() -> None:
    assert reasons_of({**employee(), 7: "x"}) == [("7", "unknown_field")]


@pytest.mark.parametrize(
    ("raw", "type_name"),
    [
        (["1", "Sales"], "array"),
        ("1,Sales", "string"),
        (None, "NoneType"),
        (42, "integer"),
        (1.5, "number"),
        (True, "boolean"),
    ],
    ids=repr,
)
def test_a_row_that_is_not_an_object_is_an_invalid_row(raw: Any, type_name: str) -> None:
    assert DEPARTMENTS.clean(raw) == (
        None,
        [Reason(None, "invalid_row", f"must be an object, got {type_name}")],
    )


def test_several_reasons_on_one_row_are_all_reported_in_column_order() -> None:
    raw = {
        "id": 0,
        "name": "z" * 300,
        "datetime": "2021/01/01 10:00",
        "department_id": "abc",
        "job_id": None,
        "salary": 5,
    }
    assert reasons_of(raw) == [
        ("salary", "unknown_field"),
        ("id", "not_positive"),
        ("name", "too_long"),
        ("datetime", "invalid_datetime"),
        ("department_id", "invalid_type"),
        ("job_id", "required"),
    ]


def test_reason_as_dict() -> None:
    assert Reason("id", "required", "is required").as_dict() == {
        "field": "id",
        "code": "required",
        "message": "is required",
    }
    assert Reason(None, "invalid_row", "m").as_dict() == {
        "field": None,
        "code": "invalid_row",
        "message": "m",
    }


# --- the tables themselves -----------------------------------------------------------------


def test_tables_are_in_dependency_order_with_csv_column_order() -> None:
    assert list(dictionary.TABLES) == ["departments", "jobs", "hired_employees"]
    assert HIRED_EMPLOYEES.column_names == ("id", "name", "datetime", "department_id", "job_id")
    assert [(c.name, c.references, c.attname) for c in HIRED_EMPLOYEES.foreign_keys] == [
        ("department_id", "departments", "department"),
        ("job_id", "jobs", "job"),
    ]


def test_unknown_table_and_unknown_column_raise_key_error_naming_the_choices() -> None:
    with pytest.raises(KeyError, match="expected one of: departments, jobs, hired_employees"):
        dictionary.table("employees")
    with pytest.raises(KeyError, match="has no column 'salary'"):
        HIRED_EMPLOYEES.column("salary")
    assert dictionary.table("jobs") is JOBS


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        ("id", "x" * 200_000, "invalid_type"),
        ("datetime", "2021" * 50_000, "invalid_datetime"),
        ("id", -(10**4000), "not_positive"),
        ("id", 10**4000, "out_of_range"),
    ],
)
def test_a_huge_value_is_named_not_copied_into_its_reason(column: str, value: Any, code: str):
    row = {"id": 1, "name": "A", "datetime": "2021-01-01T00:00:00Z", "department_id": 1,
           "job_id": 1, column: value}  # fmt: skip
    cleaned, reasons = dictionary.HIRED_EMPLOYEES.clean(row)

    assert cleaned is None
    (reason,) = reasons
    assert (reason.field, reason.code) == (column, code)
    assert len(reason.message) < 200, reason.message

"""The CSV reader: which table a file holds, and its records with their line numbers."""

from __future__ import annotations

import io

import pytest

from backend.dictionary import DEPARTMENTS, HIRED_EMPLOYEES, JOBS
from jobs.csv_files import UnknownTableError, parse_lines, read_rows, table_for


def read(data: bytes, table=DEPARTMENTS) -> list[tuple[int, dict[str, str]]]:
    return [(row.line, row.raw) for row in read_rows(io.BytesIO(data), table)]


# --- table_for -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("departments.csv", "departments"),
        ("jobs.csv", "jobs"),
        ("hired_employees.csv", "hired_employees"),
        ("hired_employees (1).csv", "hired_employees"),
        ("jobs_2021.csv", "jobs"),
        ("departments2.csv", "departments"),
        ("HIRED_EMPLOYEES.CSV", "hired_employees"),
        ("/data/incoming/jobs-2021-07.csv", "jobs"),
        ("in/departments.csv", "departments"),
        ("hired_employees_jobs.csv", "hired_employees"),
    ],
)
def test_table_for_reads_the_table_from_the_file_name(name: str, expected: str) -> None:
    assert table_for(name).name == expected


@pytest.mark.parametrize(
    "name", ["salaries.csv", "employees.csv", "jobsearch.csv", "my_jobs.csv", "departmentsx.csv"]
)
def test_table_for_unknown_names_raise_unknown_table_error(name: str) -> None:
    with pytest.raises(UnknownTableError) as caught:
        table_for(name)
    assert str(caught.value) == (
        f"cannot tell the table of {name!r}: expected departments*.csv, jobs*.csv,"
        " hired_employees*.csv, or --table"
    )
    assert isinstance(caught.value, ValueError)


# --- records -------------------------------------------------------------------------------


def test_headerless_file_gives_one_record_per_line_with_line_numbers() -> None:
    assert read(b"1,Sales\n2,Research\n") == [
        (1, {"id": "1", "department": "Sales"}),
        (2, {"id": "2", "department": "Research"}),
    ]


def test_header_row_is_skipped_but_lines_keep_their_numbers() -> None:
    assert read(b"id,department\n1,Sales\n") == [(2, {"id": "1", "department": "Sales"})]


def test_header_row_is_recognised_with_spaces_and_capitals() -> None:
    assert read(b" ID , Department \r\n1,Sales\r\n") == [(2, {"id": "1", "department": "Sales"})]


def test_header_like_row_after_the_first_line_is_data() -> None:
    assert read(b"1,Sales\nid,department\n") == [
        (1, {"id": "1", "department": "Sales"}),
        (2, {"id": "id", "department": "department"}),
    ]


def test_utf8_bom_is_dropped_before_the_header_and_the_first_id() -> None:
    assert read(b"\xef\xbb\xbfid,department\n1,Sales\n") == [
        (2, {"id": "1", "department": "Sales"})
    ]
    assert read(b"\xef\xbb\xbf1,Ventas \xc3\xa9\n") == [(1, {"id": "1", "department": "Ventas é"})]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_crlf_and_lf_give_the_same_records(newline: bytes) -> None:
    data = newline.join([b"1,Sales", b"2,Research", b""])
    assert read(data) == [
        (1, {"id": "1", "department": "Sales"}),
        (2, {"id": "2", "department": "Research"}),
    ]


def test_missing_last_newline_still_gives_the_last_record() -> None:
    assert read(b"1,Sales\n2,Research") == [
        (1, {"id": "1", "department": "Sales"}),
        (2, {"id": "2", "department": "Research"}),
    ]


def test_quoted_field_with_a_comma() -> None:
    assert read(b'1,"Sales, North"\n2,"Say ""hi"""\n') == [
        (1, {"id": "1", "department": "Sales, North"}),
        (2, {"id": "2", "department": 'Say "hi"'}),
    ]


def test_quoted_field_with_a_newline_keeps_the_following_line_numbers_right() -> None:
    assert read(b'1,"Sales\nNorth"\n2,Research\n') == [
        (1, {"id": "1", "department": "Sales\nNorth"}),
        (3, {"id": "2", "department": "Research"}),
    ]


def test_blank_lines_are_not_records_but_count_as_lines() -> None:
    assert read(b"1,Sales\n\n\n2,Research\n") == [
        (1, {"id": "1", "department": "Sales"}),
        (4, {"id": "2", "department": "Research"}),
    ]


def test_too_few_columns_leave_keys_missing() -> None:
    assert [(r.line, r.raw) for r in parse_lines(["2,Ty Hofer,2021-05-30T05:43:46Z,8,\n",
                                                    "3,Ann\n"], HIRED_EMPLOYEES)] == [
        (1, {"id": "2", "name": "Ty Hofer", "datetime": "2021-05-30T05:43:46Z",
             "department_id": "8", "job_id": ""}),
        (2, {"id": "3", "name": "Ann"}),
    ]  # fmt: skip


def test_too_many_columns_become_numbered_unknown_fields() -> None:
    assert read(b"1,Clerk,extra,more\n", JOBS) == [
        (1, {"id": "1", "job": "Clerk", "column_3": "extra", "column_4": "more"})
    ]


def test_a_single_field_row_is_kept() -> None:
    assert read(b"7\n") == [(1, {"id": "7"})]


def test_fields_are_not_trimmed_by_the_reader() -> None:
    assert read(b" 1 , Sales \n") == [(1, {"id": " 1 ", "department": " Sales "})]


def test_rows_are_streamed_one_at_a_time() -> None:
    rows = read_rows(io.BytesIO(b"1,Sales\n2,Research\n"), DEPARTMENTS)
    first = next(rows)
    assert (first.line, first.raw) == (1, {"id": "1", "department": "Sales"})
    second = next(rows)
    assert (second.line, second.raw) == (2, {"id": "2", "department": "Research"})
    with pytest.raises(StopIteration):
        next(rows)


def test_empty_file_has_no_records() -> None:
    assert read(b"") == []
    assert read(b"\xef\xbb\xbf") == []
    assert read(b"id,department\n") == []

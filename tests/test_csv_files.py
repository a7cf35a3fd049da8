"""The CSV reader: which table a file holds, and its records with their line numbers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from backend.dictionary import DEPARTMENTS, HIRED_EMPLOYEES, JOBS, REASON_CODES, Reason
from backend.models import Department, HiredEmployee, Job, LoadRun, Rejection
from jobs.csv_files import (
    QUOTE_CHARS,
    QUOTE_LINES,
    RAW_TEXT_CHARS,
    CsvFormatError,
    CsvRow,
    UnknownTableError,
    parse_lines,
    read_rows,
    table_for,
)
from jobs.loading import load_sources


def read(data: bytes, table=DEPARTMENTS) -> list[tuple[int, dict[str, str]]]:
    return [(row.line, row.raw) for row in read_rows(io.BytesIO(data), table)]


def records(data: bytes, table=DEPARTMENTS) -> list[CsvRow]:
    return list(read_rows(io.BytesIO(data), table))


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


# --- lines the reader cannot take as rows: rejected with a reason, never lost -----------------

QUOTE_REASON = (
    "opens a quote that does not close properly before the next row; the lines after it are read"
    " as rows of their own"
)
HIRED_WIDTH = "expected 5: id, name, datetime, department_id, job_id"


def test_well_formed_lines_have_no_faults() -> None:
    rows = records(b'1,Sales\n2,"Research, North"\n3,Ventas \xc3\xa9\n')

    assert [(row.text, row.faults) for row in rows] == [
        ("1,Sales", ()),
        ('2,"Research, North"', ()),
        ("3,Ventas \xe9", ()),
    ]


def test_an_undecodable_byte_rejects_its_line_only_and_is_shown_escaped() -> None:
    rows = records(b"1,Sales\n2,Jos\xe9 \xc3\xa9\xff\n3,Legal\n")

    assert [(r.line, r.raw, r.text, r.faults) for r in rows] == [
        (1, {"id": "1", "department": "Sales"}, "1,Sales", ()),
        (2, {"id": "2", "department": "Jos\\xe9 \xe9\\xff"}, "2,Jos\\xe9 \xe9\\xff",
         (Reason("department", "invalid_encoding", "is not UTF-8: bytes \\xe9\\xff"),)),
        (3, {"id": "3", "department": "Legal"}, "3,Legal", ()),
    ]  # fmt: skip
    rows[1].text.encode("utf-8")  # no unpaired surrogate is left to reach JSON or a database
    rows[1].raw["department"].encode("utf-8")


def test_undecodable_bytes_in_several_fields_give_one_reason_per_field() -> None:
    (row,) = records(b"\x801,Bad \xfe\xfe name,2021-01-01T00:00:00Z,1,1\n", HIRED_EMPLOYEES)

    assert row.faults == (
        Reason("id", "invalid_encoding", "is not UTF-8: bytes \\x80"),
        Reason("name", "invalid_encoding", "is not UTF-8: bytes \\xfe\\xfe"),
    )
    assert row.text == "\\x801,Bad \\xfe\\xfe name,2021-01-01T00:00:00Z,1,1"


@pytest.mark.parametrize("quote", [b"", b'"'], ids=["plain", "quoted"])
def test_a_200000_character_field_is_read_whole_and_its_raw_text_is_bounded(quote: bytes) -> None:
    rows = records(b"1,Sales\n2," + quote + b"x" * 200_000 + quote + b"\n3,Legal\n")

    assert [(r.line, r.raw["id"], len(r.raw["department"]), r.faults) for r in rows] == [
        (1, "1", 5, ()),
        (2, "2", 200_000, ()),  # the dictionary's 255-character rule rejects it
        (3, "3", 5, ()),
    ]
    length = 2 + 200_000 + 2 * len(quote)
    assert rows[1].text == (
        "2," + quote.decode() + "x" * (RAW_TEXT_CHARS - 2 - len(quote))
        + f"... [truncated: {length:,} characters in all]"
    )  # fmt: skip


def test_an_unterminated_quote_rejects_its_line_and_the_next_row_still_loads() -> None:
    rows = records(
        b"600501,Before,2021-01-01T00:00:00Z,1,1\n"
        b'600502,"never closed\n'
        b"600503,After,2021-01-01T00:00:00Z,1,1\n",
        HIRED_EMPLOYEES,
    )

    assert [(r.line, r.raw, r.text, r.faults) for r in rows] == [
        (1, {"id": "600501", "name": "Before", "datetime": "2021-01-01T00:00:00Z",
             "department_id": "1", "job_id": "1"}, "600501,Before,2021-01-01T00:00:00Z,1,1", ()),
        (2, {"id": "600502", "name": "never closed"}, '600502,"never closed',
         (Reason("name", "unterminated_quote", QUOTE_REASON),
          Reason(None, "column_count", f"the line has 2 fields, {HIRED_WIDTH}"))),
        (3, {"id": "600503", "name": "After", "datetime": "2021-01-01T00:00:00Z",
             "department_id": "1", "job_id": "1"}, "600503,After,2021-01-01T00:00:00Z,1,1", ()),
    ]  # fmt: skip


def test_an_unterminated_quote_on_the_last_line_is_rejected_even_with_the_right_columns() -> None:
    rows = records(b'1,Sales\n2,"Research\n')

    assert [(r.line, r.raw, r.text, r.faults) for r in rows] == [
        (1, {"id": "1", "department": "Sales"}, "1,Sales", ()),
        (2, {"id": "2", "department": "Research"}, '2,"Research',
         (Reason("department", "unterminated_quote", QUOTE_REASON),)),
    ]  # fmt: skip


def test_a_quote_that_closes_rows_later_never_merges_them() -> None:
    # Read as one record, the quote would close at line 3 with the two columns of departments.
    rows = records(b'1,"Sales\n2,Research\n3,"Legal"\n4,Ops\n')

    assert [(r.line, r.raw, [f.code for f in r.faults]) for r in rows] == [
        (1, {"id": "1", "department": "Sales"}, ["unterminated_quote"]),
        (2, {"id": "2", "department": "Research"}, []),
        (3, {"id": "3", "department": "Legal"}, []),
        (4, {"id": "4", "department": "Ops"}, []),
    ]


def test_a_record_over_several_lines_with_the_wrong_columns_is_not_taken_whole() -> None:
    rows = records(b'7,"North\nSouth",extra\n8,Ops\n')

    assert [(r.line, r.raw, [f.code for f in r.faults]) for r in rows] == [
        (1, {"id": "7", "department": "North"}, ["unterminated_quote"]),
        (2, {"id": 'South"', "department": "extra"}, []),  # the dictionary rejects this id
        (3, {"id": "8", "department": "Ops"}, []),
    ]


def test_a_line_of_only_a_quote_is_rejected_not_skipped_as_blank() -> None:
    rows = records(b'1,Sales\n"\n2,Legal\n')

    assert [(r.line, r.text, [f.code for f in r.faults]) for r in rows] == [
        (1, "1,Sales", []),
        (2, '"', ["unterminated_quote", "column_count"]),
        (3, "2,Legal", []),
    ]


def test_an_open_quote_near_the_end_recovers_every_following_row() -> None:
    lines = ["1,Sales\n", '2,"Open\n'] + [f"{i},Dept {i}\n" for i in range(3, 503)]
    rows = list(parse_lines(lines, DEPARTMENTS))

    assert [r.line for r in rows] == list(range(1, 503))
    assert [r.line for r in rows if r.faults] == [2]
    assert rows[-1].raw == {"id": "502", "department": "Dept 502"}


def test_stray_quotes_inside_a_field_are_kept_as_before() -> None:
    rows = records(b'1,5\'10" tall\n2,"ab"c\n')

    assert [(r.raw["department"], r.faults) for r in rows] == [("5'10\" tall", ()), ("abc", ())]


def test_a_quote_open_past_the_line_bound_fails_with_one_line_naming_where_it_opened() -> None:
    lines = ["1,Sales\n", '2,"Open\n'] + [f"{i},Dept {i}\n" for i in range(3, QUOTE_LINES + 10)]
    rows = parse_lines(lines, DEPARTMENTS)
    assert next(rows).line == 1

    with pytest.raises(CsvFormatError) as caught:
        next(rows)
    assert str(caught.value) == (
        f"line 2: a quote opened on this line is still open {QUOTE_LINES:,} lines later; "
        "the file's quoting is broken past recovery, fix that line"
    )
    assert isinstance(caught.value, ValueError)


def test_a_quote_open_past_the_size_bound_fails_too() -> None:
    long_line = "x" * (QUOTE_CHARS // 2) + "\n"
    lines = ["1,Sales\n", "2,Legal\n", '3,"Open\n', long_line, long_line, long_line]

    with pytest.raises(CsvFormatError) as caught:
        list(parse_lines(lines, DEPARTMENTS))
    assert str(caught.value).startswith(
        f"line 3: a quote opened on this line is still open {QUOTE_CHARS:,} characters later; "
    )


@pytest.mark.parametrize(
    ("line", "raw", "count"),
    [
        (b"1,Clerk,extra,more", {"id": "1", "job": "Clerk", "column_3": "extra",
                                 "column_4": "more"}, 4),
        (b"7", {"id": "7"}, 1),
    ],
    ids=["too-many", "too-few"],
)  # fmt: skip
def test_a_wrong_column_count_is_a_fault_that_names_the_count(
    line: bytes, raw: dict[str, str], count: int
) -> None:
    (row,) = records(line + b"\n", JOBS)

    assert (row.raw, row.faults) == (
        raw,
        (Reason(None, "column_count", f"the line has {count} field{'s' * (count > 1)}, "
                "expected 2: id, job"),),
    )  # fmt: skip


def test_bom_and_crlf_with_a_bad_line_keep_lines_ids_and_texts_clean() -> None:
    rows = records(b"\xef\xbb\xbfid,department\r\n1,Sales\r\n2,\xffBad\r\n3,Legal\r\n")

    assert [(r.line, r.raw, r.text, [f.code for f in r.faults]) for r in rows] == [
        (2, {"id": "1", "department": "Sales"}, "1,Sales", []),
        (3, {"id": "2", "department": "\\xffBad"}, "2,\\xffBad", ["invalid_encoding"]),
        (4, {"id": "3", "department": "Legal"}, "3,Legal", []),
    ]


def test_every_code_the_reader_gives_is_a_documented_reason_code() -> None:
    rows = records(b'1,\xff\n2,a,b\n3,"open\n')
    codes = {fault.code for row in rows for fault in row.faults}

    assert codes == {"invalid_encoding", "column_count", "unterminated_quote"}
    assert codes <= set(REASON_CODES)


# --- the same faults through the loader, on the database ---------------------------------


def _load(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    (summary,) = load_sources([str(path)])
    assert summary.status == LoadRun.Status.COMPLETED


def _rejections() -> list[tuple[int, int | None, str, list[dict[str, str | None]]]]:
    return list(Rejection.objects.order_by("position").values_list("position", "row_id", "raw",
                                                                     "reasons"))  # fmt: skip


@pytest.fixture
def department_and_job(db: None) -> None:
    Department.objects.create(id=1, department="Sales")
    Job.objects.create(id=1, job="Clerk")


@pytest.mark.django_db
def test_load_an_undecodable_line_is_rejected_and_its_neighbours_stored(
    tmp_path: Path, department_and_job: None
) -> None:
    _load(tmp_path / "hired_employees.csv",
          b"1,Ann,2021-01-01T00:00:00Z,1,1\n2,Bj\xf6rn,2021-01-01T00:00:00Z,1,1\n"
          b"3,Cy,2021-01-01T00:00:00Z,1,1\n")  # fmt: skip

    assert list(HiredEmployee.objects.order_by("id").values_list("id", "name")) == [
        (1, "Ann"),
        (3, "Cy"),
    ]
    assert _rejections() == [
        (2, 2, "2,Bj\\xf6rn,2021-01-01T00:00:00Z,1,1",
         [{"field": "name", "code": "invalid_encoding", "message": "is not UTF-8: bytes \\xf6"}]),
    ]  # fmt: skip


@pytest.mark.django_db
def test_load_a_200000_character_field_is_rejected_with_a_bounded_raw(tmp_path: Path) -> None:
    _load(tmp_path / "departments.csv", b"1,Sales\n2," + b"y" * 200_000 + b"\n3,Legal\n")

    assert list(Department.objects.order_by("id").values_list("id", flat=True)) == [1, 3]
    ((position, row_id, raw, reasons),) = _rejections()
    assert (position, row_id) == (2, 2)
    assert raw == "2," + "y" * (RAW_TEXT_CHARS - 2) + "... [truncated: 200,002 characters in all]"
    assert reasons == [
        {"field": "department", "code": "too_long",
         "message": "must be at most 255 characters, got 200000"}
    ]  # fmt: skip


@pytest.mark.django_db
def test_load_an_unterminated_quote_rejects_its_line_and_stores_the_next_row(
    tmp_path: Path, department_and_job: None
) -> None:
    _load(tmp_path / "hired_employees.csv",
          b'600502,"never closed\n600503,After,2021-01-01T00:00:00Z,1,1\n')  # fmt: skip

    assert list(HiredEmployee.objects.values_list("id", "name")) == [(600503, "After")]
    assert _rejections() == [
        (1, 600502, '600502,"never closed', [
            {"field": "name", "code": "unterminated_quote", "message": QUOTE_REASON},
            {"field": None, "code": "column_count",
             "message": f"the line has 2 fields, {HIRED_WIDTH}"},
            {"field": "datetime", "code": "required", "message": "is required"},
            {"field": "department_id", "code": "required", "message": "is required"},
            {"field": "job_id", "code": "required", "message": "is required"},
        ]),
    ]  # fmt: skip


@pytest.mark.django_db
def test_load_a_faulty_line_whose_fields_pass_the_rules_is_still_rejected(tmp_path: Path) -> None:
    """1,200 rows then an unterminated quote (that alone would be a valid department) and 300
    more: more than 1,000 valid rows, so PostgreSQL takes the COPY path."""
    lines = [f"{i},Dept {i}\n" for i in range(1, 1201)] + ['1201,"Open\n']
    lines += [f"{i},Dept {i}\n" for i in range(1202, 1502)]
    _load(tmp_path / "departments.csv", "".join(lines).encode())

    stored = set(Department.objects.values_list("id", flat=True))
    assert stored == set(range(1, 1502)) - {1201}
    assert _rejections() == [
        (1201, 1201, '1201,"Open',
         [{"field": "department", "code": "unterminated_quote", "message": QUOTE_REASON}]),
    ]  # fmt: skip


@pytest.mark.django_db
def test_load_wrong_column_counts_are_rejected_both_ways(tmp_path: Path) -> None:
    _load(tmp_path / "jobs.csv", b"1,Clerk\n2,Cook,extra\n3\n4,Driver\n")

    assert list(Job.objects.order_by("id").values_list("id", flat=True)) == [1, 4]
    assert _rejections() == [
        (2, 2, "2,Cook,extra", [
            {"field": None, "code": "column_count",
             "message": "the line has 3 fields, expected 2: id, job"},
            {"field": "column_3", "code": "unknown_field", "message": "is not a column of jobs"},
        ]),
        (3, 3, "3", [
            {"field": None, "code": "column_count",
             "message": "the line has 1 field, expected 2: id, job"},
            {"field": "job", "code": "required", "message": "is required"},
        ]),
    ]  # fmt: skip


@pytest.mark.django_db
def test_load_a_quote_open_past_the_bound_fails_the_run_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "departments.csv"
    path.write_text(
        '1,Sales\n2,"Open\n' + "".join(f"{i},D{i}\n" for i in range(3, QUOTE_LINES + 10)),
        encoding="utf-8",
    )
    message = (
        f"line 2: a quote opened on this line is still open {QUOTE_LINES:,} lines later; "
        "the file's quoting is broken past recovery, fix that line"
    )

    with pytest.raises(CsvFormatError) as caught:
        load_sources([str(path)])
    assert str(caught.value) == message
    run = LoadRun.objects.get()
    assert run.status == LoadRun.Status.FAILED
    assert run.error.endswith(message)  # the loader may put the error's class name first
    assert run.last_line == 0  # the line before the quote was in the chunk that failed


@pytest.mark.django_db
def test_load_bom_and_crlf_file_is_still_fine(tmp_path: Path) -> None:
    _load(
        tmp_path / "departments.csv", b'\xef\xbb\xbfid,department\r\n1,"Sales, EMEA"\r\n2,Legal\r\n'
    )

    assert list(Department.objects.order_by("id").values_list("id", "department")) == [
        (1, "Sales, EMEA"),
        (2, "Legal"),
    ]
    assert _rejections() == []

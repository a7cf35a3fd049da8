from backend.models import Department, HiredEmployee, Job, Rejection


def test_sample_data_loads_with_the_expected_counts(sample_data: None) -> None:
    assert (Department.objects.count(), Job.objects.count()) == (12, 183)
    assert HiredEmployee.objects.count() == 1929
    assert Rejection.objects.filter(table="hired_employees").count() == 70


def test_graphql_reads_a_page(gql, sample_data: None) -> None:
    answer = gql("{ departments(first: 2) { totalCount nodes { id department } } }", scope="read")
    assert answer.status == 200
    assert answer.data == {
        "departments": {
            "totalCount": 12,
            "nodes": [
                {"id": 1, "department": "Product Management"},
                {"id": 2, "department": "Sales"},
            ],
        }
    }


def test_demo_command_loads_the_samples_once_and_prints_a_working_token(gql) -> None:
    import io
    import re

    from django.core.management import call_command

    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    call_command("demo", "--no-serve", stdout=io.StringIO())  # a second run loads nothing again

    printed = out.getvalue()
    assert "loaded hired_employees: 1929 inserted, 70 rejected" in printed
    assert "GraphiQL: http://127.0.0.1:8000/graphql" in printed
    assert HiredEmployee.objects.count() == 1929
    assert Rejection.objects.count() == 70
    token = re.search(r"Bearer (rst_[\w-]+)", printed).group(1)
    answer = gql("{ jobs { totalCount } }", token=token)
    assert answer.status == 401  # the second run replaced the first token

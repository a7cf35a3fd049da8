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


def test_a_web_worker_freezes_its_start_up_and_collects_in_larger_passes() -> None:
    """``backend.wsgi`` (what gunicorn loads in each worker): the URLs and the schema imported,
    then everything frozen out of the collector's passes and a first generation of 20,000."""
    import os
    import subprocess
    import sys

    script = (
        "import gc, sys; import backend.wsgi; print(gc.get_threshold()[0], "
        "gc.get_freeze_count() > 10_000, 'graph.schema' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.settings_test"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["20000", "True", "True"]

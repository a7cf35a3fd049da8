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

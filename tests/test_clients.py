"""docs/clients.md as written: the Python example pages a live server to its last hire, and
the curl examples' documents are answered as the page shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from backend.models import HiredEmployee

ROOT = Path(settings.BASE_DIR)
PAGE = (ROOT / "docs" / "clients.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "docs" / "examples" / "page_hires.py"


def run_example(*args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    """The example as a user runs it: its own process, the token in ROSTER_TOKEN."""
    env = {k: v for k, v in os.environ.items() if k != "ROSTER_TOKEN"}
    if token is not None:
        env["ROSTER_TOKEN"] = token
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_page_shows_the_example_file_verbatim() -> None:
    (shown,) = re.findall(r"```python\n(.*?)```", PAGE, flags=re.DOTALL)
    assert shown == EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.django_db(transaction=True)
def test_the_python_example_prints_a_department_s_hires_page_by_page_in_id_order(
    live_server, sample_data, tokens
) -> None:
    ran = run_example(
        f"{live_server.url}/graphql", "--department", "5", "--first", "100", token=tokens["read"]
    )

    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    printed = [int(line.split("\t")[0]) for line in lines if not line.startswith("page ")]
    stored = HiredEmployee.objects.filter(department_id=5).order_by("id")
    assert printed == list(stored.values_list("id", flat=True))
    assert len(printed) == 241
    assert [line for line in lines if line.startswith("page ")] == [
        "page 1: 100 of 241 hires",
        "page 2: 100 of 241 hires",
        "page 3: 41 of 241 hires",
    ]
    shown = re.search(r"On the sample data it prints .*?\n```\n(.*?)```", PAGE, re.DOTALL)
    assert shown is not None
    assert [line for line in shown[1].splitlines() if line != "…"] == [
        lines[0], lines[1], lines[2], lines[-42]
    ]  # fmt: skip


def test_the_python_example_without_a_token_says_so() -> None:
    ran = run_example("http://127.0.0.1:9/graphql", token=None)

    assert ran.returncode == 2
    assert ran.stderr.endswith("error: set ROSTER_TOKEN to a token of the read scope\n")


def curl_examples() -> list[tuple[dict[str, object], dict[str, object], int]]:
    """Each curl example's body, and the answer and status the page shows under it."""
    found = re.findall(
        r"```sh\ncurl .*?-d '(.*?)'\n```\n\n```\n(.*?)\nHTTP (\d+)\n```", PAGE, flags=re.DOTALL
    )
    return [(json.loads(body), json.loads(answer), int(status)) for body, answer, status in found]


@pytest.mark.django_db
def test_the_curl_examples_answer_as_the_page_shows(client: Client, sample_data, tokens) -> None:
    """Sent as the page sends them, with ``Accept: application/graphql-response+json``: the
    status, the media type and the body the page shows."""
    (runs, ran, ok), (fails, failed, refused) = curl_examples()
    assert "Accept: application/graphql-response+json" in PAGE
    assert (ok, refused, "data" in failed) == (200, 400, False)
    headers = {
        "Authorization": f"Bearer {tokens['read']}",
        "Accept": "application/graphql-response+json",
    }

    answers = [
        client.post("/graphql", json.dumps(body), "application/json", headers=headers)
        for body in (runs, fails)
    ]

    media_type = "application/graphql-response+json; charset=utf-8"
    assert [a["Content-Type"] for a in answers] == [media_type, media_type]
    assert (answers[0].status_code, answers[0].json()) == (ok, ran)
    assert (answers[1].status_code, answers[1].json()) == (refused, failed)

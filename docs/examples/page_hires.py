"""Page through Roster's hired employees with gql, a Python GraphQL client.

    ROSTER_TOKEN=rst_… python docs/examples/page_hires.py http://127.0.0.1:8000/graphql \\
        --department 5 --first 100

Every page is one request of the same query with the variables first, after and filter: the
next page starts after the previous page's endCursor, until hasNextPage is false. gql checks the
query against schema.graphql, Roster's published contract, before it sends anything, so a query
the API would refuse fails here first. Needs `pip install "gql[requests]"`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gql import Client, GraphQLRequest, gql
from gql.client import SyncClientSession
from gql.transport.requests import RequestsHTTPTransport

CONTRACT = Path(__file__).resolve().parents[2] / "schema.graphql"

PAGE = gql(
    """
    query Hires($first: Int!, $after: String, $filter: HiredEmployeeFilter) {
      hiredEmployees(first: $first, after: $after, filter: $filter) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { id name datetime department { department } job { job } }
      }
    }
    """
)


def pages(
    session: SyncClientSession, *, first: int, where: dict[str, Any] | None
) -> Iterator[dict[str, Any]]:
    """Each page of the hires that match ``where``, in id order, the last one included."""
    after = None
    while True:
        variables = {"first": first, "after": after, "filter": where}
        page = session.execute(GraphQLRequest(PAGE, variable_values=variables))["hiredEmployees"]
        yield page
        if not page["pageInfo"]["hasNextPage"]:
            return
        after = page["pageInfo"]["endCursor"]


def main() -> None:
    parser = argparse.ArgumentParser(description="Print every hire of a department, by pages.")
    parser.add_argument("url", help="Roster's GraphQL endpoint, http://host:port/graphql")
    parser.add_argument("--department", type=int, help="only this departmentId's hires")
    parser.add_argument("--first", type=int, default=100, help="hires per page, at most 1000")
    args = parser.parse_args()
    token = os.environ.get("ROSTER_TOKEN")
    if not token:
        parser.error("set ROSTER_TOKEN to a token of the read scope")
    where = None if args.department is None else {"departmentId": args.department}

    transport = RequestsHTTPTransport(
        url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    client = Client(transport=transport, schema=CONTRACT.read_text(encoding="utf-8"))
    with client as session:  # one HTTP connection for every page
        for number, page in enumerate(pages(session, first=args.first, where=where), start=1):
            print(f"page {number}: {len(page['nodes'])} of {page['totalCount']} hires")
            for hire in page["nodes"]:
                where_and_what = f"{hire['department']['department']}\t{hire['job']['job']}"
                print(f"{hire['id']}\t{hire['datetime']}\t{hire['name']}\t{where_and_what}")


if __name__ == "__main__":
    main()

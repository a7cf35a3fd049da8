"""Which GraphQL operations may read from the replica (``backend/replica.py``)."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from backend.replica import replica_reads


class ReplicaReads(SchemaExtension):
    """A query's fields may read the data tables from the replica. A mutation's never do, even
    the reads it makes outside its transaction: its answer shows what it wrote."""

    def on_execute(self) -> Iterator[None]:
        is_query = self.execution_context.operation_type is OperationType.QUERY
        with replica_reads(is_query):
            yield

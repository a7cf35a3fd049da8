"""Documents this process has parsed and validated before, kept so a client that sends the
same query again skips both steps.

A client sends a handful of documents over and over, with other variables. Parsing one and
validating it against the schema (graphql-core's thirty-odd rules, each a visitor) cost more
than the rest of a small query. So the parsed document is kept, by its text and the parser's
options (``GRAPHQL_MAX_TOKENS``), and so is the fact that it passed every rule that reads only
the document and the schema.

What is never kept: a verdict that reads the request. The query limits
(``graph/limits.py``: depth, aliases, rows) read the request's variables, so they measure the
kept document again at every request; a document they refuse is validated in full, as the
first time, so its errors are exactly the usual ones. A document that does not parse, or that
fails validation, is not kept as valid either. Only documents up to ``MAX_DOCUMENT_CHARS``
are kept, at most ``MAX_DOCUMENTS`` of them (the least recently used goes first), so hostile
documents cannot grow a worker's memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import ASTValidationRule, DocumentNode
from strawberry.extensions import SchemaExtension

from graph.limits import QueryLimitsRule

MAX_DOCUMENTS = 128
MAX_DOCUMENT_CHARS = 2048
"""A client's document is a few hundred characters (a few kB of nodes). At worst, a field every
two characters, a 2,048-character one parses to about 0.6 MB of nodes: the cache holds at
most about 70 MB per worker, and only callers with a token reach the parser."""

_Rules = tuple[type[ASTValidationRule], ...]
_Key = tuple[str, tuple[tuple[str, object], ...]]


@dataclass
class KnownDocument:
    document: DocumentNode
    valid_under: _Rules | None = None
    """The document-only rules it passed, all at once; None until it has."""


class DocumentCache:
    """The last ``MAX_DOCUMENTS`` documents parsed, by text and parser options."""

    def __init__(self) -> None:
        self._documents: OrderedDict[_Key, KnownDocument] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _Key) -> KnownDocument | None:
        with self._lock:
            known = self._documents.get(key)
            if known is not None:
                self._documents.move_to_end(key)
            return known

    def keep(self, key: _Key, document: DocumentNode) -> KnownDocument:
        with self._lock:
            known = self._documents[key] = KnownDocument(document)
            while len(self._documents) > MAX_DOCUMENTS:
                self._documents.popitem(last=False)
            return known

    def clear(self) -> None:
        with self._lock:
            self._documents.clear()


document_cache = DocumentCache()


class KnownDocuments(SchemaExtension):
    """Parse and validate a document once per process (see the module's docstring). Listed
    after ``QueryLimits`` and ``ErrorCodes``, so it sees the rules as they will run."""

    def __init__(self) -> None:
        self.key: _Key | None = None
        self.known: KnownDocument | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if context.graphql_document is None and query and len(query) <= MAX_DOCUMENT_CHARS:
            self.key = (query, tuple(sorted(context.parse_options.items())))
            self.known = document_cache.get(self.key)
            if self.known is not None:
                context.graphql_document = self.known.document
        yield  # a document that does not parse raises here: nothing below runs
        if self.key is not None and self.known is None and context.graphql_document is not None:
            self.known = document_cache.keep(self.key, context.graphql_document)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        known = self.known
        per_request = [r for r in context.validation_rules if issubclass(r, QueryLimitsRule)]
        document_rules = tuple(r for r in context.validation_rules if r not in per_request)
        if (
            known is not None
            and known.valid_under == document_rules
            and context.pre_execution_errors is None
            and not any(r.errors(context.schema._schema, known.document) for r in per_request)
        ):
            context.pre_execution_errors = []  # graphql-core's validation is skipped
        yield
        if known is not None and context.pre_execution_errors == []:
            known.valid_under = document_rules

"""The docs derive from the dictionary, and every reason code the code emits is documented."""

import re
from pathlib import Path

from django.conf import settings

from backend.dictionary import REASON_CODES, as_markdown

ROOT = Path(settings.BASE_DIR)


def test_data_dictionary_page_is_generated_from_the_dictionary() -> None:
    page = (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert page == as_markdown(), "run: python manage.py dictionary_docs"


def test_every_reason_code_in_the_code_is_documented() -> None:
    source = "".join(
        (ROOT / name).read_text(encoding="utf-8")
        for name in ("backend/dictionary.py", "jobs/ingest.py")
    )
    emitted = set(re.findall(r'(?:Reason\([^,]+,|RuleViolation\()\s*"([a-z_]+)"', source))
    assert emitted, "the pattern found no reason codes"
    assert emitted <= set(REASON_CODES), emitted - set(REASON_CODES)
    assert {"required", "duplicate", "unknown_reference", "batch_aborted"} <= emitted

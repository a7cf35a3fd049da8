"""The docs derive from the dictionary, and every reason code the code emits is documented."""

import re
from pathlib import Path

from django.conf import settings

from backend.dictionary import REASON_CODES, ReasonCode, as_markdown

ROOT = Path(settings.BASE_DIR)


def test_data_dictionary_page_is_generated_from_the_dictionary() -> None:
    page = (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert page == as_markdown(), "run: python manage.py dictionary_docs"


def test_every_reason_code_is_documented() -> None:
    """The codes are one enum (``ReasonCode``): the type checker keeps the code to it, and
    each member has its meaning here and a row in the generated page."""
    assert set(REASON_CODES) == set(ReasonCode)
    assert all(REASON_CODES[code].strip() for code in ReasonCode)
    page = (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    section = page.split("## Reason codes", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \| ", section, flags=re.MULTILINE))
    assert documented == {code.value for code in ReasonCode}
    assert {"required", "duplicate", "unknown_reference", "batch_aborted"} <= documented


def test_every_environment_variable_the_code_reads_is_in_the_readme() -> None:
    """Each ``os.environ`` name in backend/, jobs/, graph/ and lambdas/ (the settings read
    theirs through ``_flag`` and ``_list`` too) has a row in the README's Settings table."""
    read_by_name = re.compile(
        r'(?:\benviron\.get\(|\benviron\.setdefault\(|\benviron\[|\b_flag\(|\b_list\()"([A-Z]\w*)"'
    )
    read = {
        name
        for folder in ("backend", "jobs", "graph", "lambdas")
        for path in (ROOT / folder).rglob("*.py")
        for name in read_by_name.findall(path.read_text(encoding="utf-8"))
    }
    assert {"DATABASE_URL", "SECRET_KEY", "SECURE_COOKIES", "DJANGO_SETTINGS_MODULE"} <= read
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", table, flags=re.MULTILINE)
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    assert sorted(read - documented) == []

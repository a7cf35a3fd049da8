"""GraphiQL's vendored files (``scripts/vendor_graphiql.sh``) are the ones recorded, at the
script's pinned versions."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
VENDORED = ROOT / "backend" / "static" / "graphiql"
SCRIPT = ROOT / "scripts" / "vendor_graphiql.sh"


def recorded_checksums() -> dict[str, str]:
    """``SHA256SUMS`` as ``{file name: hex digest}`` (``sha256sum``'s format)."""
    lines = (VENDORED / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def test_every_vendored_file_matches_its_recorded_checksum() -> None:
    recorded = recorded_checksums()
    present = {path.name for path in VENDORED.iterdir()} - {"SHA256SUMS"}
    assert sorted(recorded) == sorted(present)  # nothing unrecorded, nothing missing
    actual = {name: hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() for name in present}
    assert actual == recorded


def test_the_vendored_files_are_the_scripts_pinned_versions_with_their_licences() -> None:
    """SOURCES.txt is what the script last fetched: a pin changed in the script and not rerun
    (or files vendored by hand) fails here."""
    pinned = re.findall(r'^  "(\S+ \S+ sha512-\S+ \S+)"$', SCRIPT.read_text(), re.MULTILINE)
    sources = [
        line
        for line in (VENDORED / "SOURCES.txt").read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    ]
    assert sources == pinned
    versions = {line.split()[0]: line.split()[1] for line in sources}
    assert versions == {
        "react": "18.3.1",
        "react-dom": "18.3.1",
        "graphiql": "3.9.0",
        "@graphiql/plugin-explorer": "3.2.6",
        "graphiql-explorer": "0.9.0",
    }
    for name in versions:
        licence = (VENDORED / f"LICENSE-{name.removeprefix('@').replace('/', '-')}.txt").read_text()
        assert licence.startswith("MIT License")

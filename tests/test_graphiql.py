"""GraphiQL's vendored files (``scripts/vendor_graphiql.sh``) are the ones recorded, at the
script's pinned versions, and a production server (gunicorn, ``DEBUG`` off) serves them with the
page: the playground needs no CDN and no collectstatic."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import requests
from django.conf import settings

from tests.test_outage import RosterServer

ROOT = Path(settings.BASE_DIR)
VENDORED = ROOT / "backend" / "static" / "graphiql"
SCRIPT = ROOT / "scripts" / "vendor_graphiql.sh"
PAGE_FILES = [
    "/static/graphiql/graphiql.min.css",
    "/static/graphiql/plugin-explorer.css",
    "/static/graphiql/react.production.min.js",
    "/static/graphiql/react-dom.production.min.js",
    "/static/graphiql/graphiql.min.js",
    "/static/graphiql/plugin-explorer.umd.js",
    "/static/roster/graphiql.js",
]


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


def test_a_production_server_serves_the_page_and_every_file_it_loads(tmp_path: Path) -> None:
    """gunicorn with ``DEBUG`` off and nothing collected: WhiteNoise serves the apps' files."""
    server = RosterServer(f"sqlite:///{tmp_path / 'roster.sqlite3'}", tmp_path / "var")
    server.start()
    try:
        page = requests.get(f"{server.base}/graphql", headers={"Accept": "text/html"}, timeout=30)
        assert page.status_code == 200
        loaded = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert sorted(loaded) == sorted(PAGE_FILES)
        for path in loaded:
            answer = requests.get(f"{server.base}{path}", timeout=30)
            assert answer.status_code == 200, path
            kind = "text/css" if path.endswith(".css") else "text/javascript"
            assert answer.headers["Content-Type"].startswith(kind), path
            assert answer.content == (ROOT / "backend" / path.lstrip("/")).read_bytes(), path
    finally:
        server.stop()
    assert not (tmp_path / "var" / "static").exists()  # no collectstatic was needed

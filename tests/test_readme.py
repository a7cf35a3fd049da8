"""The README to the letter: from a fresh copy of the repository, after ``make demo``, every
``python manage.py`` command the README shows runs as written, on the embedded default (no
DEBUG, no DATABASE_URL, no SECRET_KEY), in the venv as the README says to activate it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)

NOT_RUN = {
    "python manage.py createsuperuser": "interactive: it asks for a password",
}
"""README commands this test does not run, and why."""


def readme_commands() -> list[str]:
    """Every ``python manage.py`` line of the README's ``sh`` blocks, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("python manage.py"):
                commands.append(line)
    for inline in re.findall(r"`(python manage\.py [^`]+)`", text):
        commands.append(inline)
    return list(dict.fromkeys(commands))


def _fresh_copy(target: Path) -> None:
    """The repository's tracked files, as a clone has them (the working tree's version)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _activated_env(s3_endpoint: str) -> dict[str, str]:
    """A shell after ``. .venv/bin/activate``, with nothing configured but the S3 server."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "ROSTER_", "AWS_", "BACKUP_"))
        and key not in {"DEBUG", "DATABASE_URL", "SECRET_KEY", "PYTHONPATH"}
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        AWS_ENDPOINT_URL=s3_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return env


def test_every_manage_py_command_in_the_readme_runs_as_written(
    tmp_path: Path, s3_server: str
) -> None:
    clone = tmp_path / "roster"
    _fresh_copy(clone)
    env = _activated_env(s3_server)

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            shlex.split(command), cwd=clone, env=env, capture_output=True, text=True, timeout=300
        )

    # make demo's recipe, without serving: it is what the README's first command runs.
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "DEBUG=1 $(BIN)/python manage.py demo" in recipe
    demo = subprocess.run(
        ["python", "manage.py", "demo", "--no-serve"],
        cwd=clone,
        env={**env, "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    assert "loaded hired_employees: 1929 inserted, 70 rejected" in demo.stdout

    # The files and the bucket the README's examples name.
    (clone / "exports").mkdir()
    sample = clone / "data/sample"
    shutil.copy(sample / "hired_employees.csv", clone / "exports/hired_employees (1).csv")
    shutil.copy(sample / "jobs.csv", clone / "export.csv")
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="landing")
    for name in ("departments", "jobs", "hired_employees"):
        s3.upload_file(str(clone / f"data/sample/{name}.csv"), "landing", f"history/{name}.csv")

    commands = readme_commands()
    assert len(commands) >= 12, commands
    ran: dict[str, str] = {}
    try:
        for command in commands:
            if command in NOT_RUN:
                continue
            if "[" in command or "<" in command:  # a synopsis: run it with no option
                command = re.sub(r"\s*\[[^\]]*\]|\s*<[^>]*>", "", command)
            if "--backup jobs/" in command:  # the README's key is an example: use ours
                (key,) = [
                    p.relative_to(clone / "var/backups").as_posix()
                    for p in sorted((clone / "var/backups/jobs").glob("*.avro"))[-1:]
                ]
                command = re.sub(r"--backup \S+", f"--backup {key}", command)
            answer = run(command)
            ran[command] = answer.stdout
            assert answer.returncode == 0, f"{command}\n{answer.stderr}"
            assert "Traceback" not in answer.stderr, f"{command}\n{answer.stderr}"
    finally:
        for item in s3.list_objects_v2(Bucket="landing").get("Contents", []):
            s3.delete_object(Bucket="landing", Key=item["Key"])
        s3.delete_bucket(Bucket="landing")

    assert (clone / "var/secret_key").exists(), "the embedded default keeps its generated key"
    token = ran["python manage.py create_token reporting --scope read"].strip().splitlines()[-1]
    assert token.startswith("rst_")
    assert "hired_employees" in ran["python manage.py load_csv data/sample"]
    assert any(command.startswith("python manage.py restore --all") for command in ran)


@pytest.mark.parametrize("command", sorted(NOT_RUN))
def test_the_commands_not_run_are_still_in_the_readme(command: str) -> None:
    assert command in readme_commands()

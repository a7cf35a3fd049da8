#!/usr/bin/env bash
# Build build/lambda.zip: Roster's code plus manylinux wheels for the Lambda runtime
# (Python 3.11, x86_64), whatever machine builds it. Usage: bash lambdas/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=build/lambda
rm -rf "$out" build/lambda.zip
mkdir -p "$out"

# The runtime dependencies from pyproject.toml, less the web server the Lambdas do not run.
mapfile -t deps < <("$PYTHON" - <<'PY'
import tomllib
for dep in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if not dep.startswith(("gunicorn", "tqdm")):
        print(dep)
PY
)
"$PYTHON" -m pip install --quiet --target "$out" --implementation cp --python-version 3.11 \
  --platform manylinux2014_x86_64 --only-binary=:all: "${deps[@]}"

cp -r backend graph jobs lambdas "$out"/
find "$out" -name __pycache__ -type d -prune -exec rm -rf {} +
(cd "$out" && "$PYTHON" -m zipfile -c ../lambda.zip .)
echo "built build/lambda.zip ($(du -h build/lambda.zip | cut -f1))"

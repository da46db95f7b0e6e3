#!/bin/sh
# The virtual environment of ONE JHaaS service, as its image holds it: the
# service's package (not editable) and the packages it declares, at the
# versions in uv.lock, and nothing else - no launcher, no other service.
#
#   deploy/build-service-env.sh [--deps-only] PACKAGE VENV_DIR
#
# PACKAGE: gateway | request-svc | governance-svc | participant-svc | deployer-svc
# --deps-only: only the third-party packages (needs nothing but pyproject.toml
#   and uv.lock), so that the Dockerfile can cache them in a layer of their own.
#
# The project is the folder above this script's. The Dockerfile runs this
# script on the files it copies, and tests/deploy/test_service_images.py runs
# it the same way on a copy of those same files; keep the two in step.
# uv comes from $UV (else `uv` on PATH); the UV_* variables the Dockerfile
# sets (bytecode, link mode, interpreter) are read by uv itself.
set -eu

usage() {
    echo "usage: $0 [--deps-only] gateway|request-svc|governance-svc|participant-svc|deployer-svc VENV_DIR" >&2
    exit 2
}

deps_only=false
if [ "${1:-}" = "--deps-only" ]; then
    deps_only=true
    shift
fi
[ "$#" -eq 2 ] || usage
package=$1
venv=$2
case $package in
    gateway | request-svc | governance-svc | participant-svc | deployer-svc) ;;
    *) echo "$0: not a JHaaS service package: '$package'" >&2; usage ;;
esac
case $venv in
    /*) ;;
    *) venv=$PWD/$venv ;;
esac

cd "$(dirname "$0")/.."

# --frozen: exactly what uv.lock says, without resolving again (the launcher's
# folder is not in the image and need not be). --package: this service's own
# dependency tree only. uv sync also removes whatever else the folder holds.
set -- --frozen --no-dev --no-editable --package "$package"
if [ "$deps_only" = true ]; then
    set -- "$@" --no-install-workspace
fi
UV_PROJECT_ENVIRONMENT=$venv "${UV:-uv}" sync "$@"
[ "$deps_only" = true ] && exit 0

# Fail the build, not the container: every module of the service, a backend
# it loads only when configured included, imports in this environment alone
# (-I: nothing from the current folder or the caller's PYTHONPATH).
module=$(printf '%s' "$package" | tr - _)
"$venv/bin/python" -I -B -c '
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(found.name)
' "$module"
echo "$package: $venv"

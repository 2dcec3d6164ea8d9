#!/usr/bin/env bash
# Build Carillon's container image (`make image`).
#
#   IMAGE             tag to build (carillon:latest)
#   ENGINE            docker or podman (default: docker when its daemon answers, else podman)
#   BASE              base image (python:3.11-slim); when it cannot be pulled, Debian bookworm
#                     with Debian's python3 is made with mmdebstrap and used instead (two
#                     images: carillon-base and carillon-build-base, kept for the next build)
#   REBUILD_BASE=1    remake those Debian bases even if they exist (e.g. for security updates)
#   CONTAINER_ULIMITS ulimits for the build containers, e.g. "nofile=20000:20000 nproc=32768:32768"
#                     where the engine asks for more than root may set (the Makefile sets it)
#   BUILD_FLAGS       more options for `build`, e.g. --layers=false (keep no intermediate images)
#
# pip in the build reaches PyPI as pip on this host does: its index URL (if it is http(s)) is
# passed as a build argument and its CA bundle (PIP_CERT or pip's `cert` setting) as a build
# secret, so a proxy that re-signs TLS works and nothing of this host is stored in the image.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-carillon:latest}"
BASE="${BASE:-python:3.11-slim}"
DEBIAN_BASE="carillon-base:bookworm"
DEBIAN_BUILD_BASE="carillon-build-base:bookworm"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
read -r -a ULIMITS <<<"${CONTAINER_ULIMITS:-}"
read -r -a FLAGS <<<"${BUILD_FLAGS:-}"

say() { echo "image: $*" >&2; }

if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then
    ENGINE=podman
  else
    say "neither a Docker daemon nor podman answers: install one (apt-get install podman runc)"
    exit 1
  fi
fi

has_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

debian_image() {
  # debian_image TAG PACKAGES: Debian bookworm (main, updates, security), its Essential packages
  # plus PACKAGES, imported as TAG. Left out: documentation, translations, glibc's iconv
  # modules (Python has its own codecs) and the leap-second "right/" time zones.
  local tag="$1" packages="$2" tarball
  tarball="$(mktemp --suffix=.tar)"
  trap 'rm -f "$tarball"' RETURN
  mmdebstrap --quiet --variant=essential --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/lib/*/gconv/*' \
    --dpkgopt='path-exclude=/usr/share/zoneinfo/right/*' \
    bookworm "$tarball" \
    "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb $DEBIAN_SECURITY_MIRROR bookworm-security main"
  "$ENGINE" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    "$tarball" "$tag" >/dev/null
}

BUILD_BASE="$BASE"
if ! has_image "$BASE" && ! "$ENGINE" pull -q "$BASE" >/dev/null 2>&1; then
  say "$BASE cannot be pulled: building on Debian bookworm with Debian's python3"
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    say "mmdebstrap is needed to make the Debian base (apt-get install mmdebstrap)"
    exit 1
  fi
  # The runtime base carries what the wheels and python:3.11-slim need (python3, libstdc++,
  # CA certificates, netbase, tzdata) and no package manager; the build base adds the venv
  # module and binutils.
  if [ "${REBUILD_BASE:-0}" = 1 ] || ! has_image "$DEBIAN_BASE"; then
    say "making $DEBIAN_BASE with mmdebstrap from $DEBIAN_MIRROR"
    debian_image "$DEBIAN_BASE" python3,libstdc++6,ca-certificates,netbase,tzdata
  fi
  if [ "${REBUILD_BASE:-0}" = 1 ] || ! has_image "$DEBIAN_BUILD_BASE"; then
    say "making $DEBIAN_BUILD_BASE with mmdebstrap from $DEBIAN_MIRROR"
    debian_image "$DEBIAN_BUILD_BASE" python3-venv,binutils,ca-certificates
  fi
  BASE="$DEBIAN_BASE"
  BUILD_BASE="$DEBIAN_BUILD_BASE"
fi

pip_setting() {
  # The host pip's value for a setting (environment first, then its configuration files).
  local variable="$1" key="$2" value="${!1:-}"
  if [ -z "$value" ]; then
    value="$(python3 -m pip config list 2>/dev/null | sed -n "s/^global\.$key='\(.*\)'\$/\1/p")"
  fi
  printf '%s' "$value"
}

args=(--build-arg "BASE=$BASE" --build-arg "BUILD_BASE=$BUILD_BASE" -t "$IMAGE" "${FLAGS[@]}")
for limit in "${ULIMITS[@]}"; do args+=(--ulimit "$limit"); done
index="$(pip_setting PIP_INDEX_URL index-url)"
case "$index" in http://* | https://*) args+=(--build-arg "PIP_INDEX_URL=$index") ;; esac
ca="$(pip_setting PIP_CERT cert)"
if [ -n "$ca" ] && [ -f "$ca" ]; then args+=(--secret "id=pip_ca,src=$ca"); fi
if [ "$ENGINE" = podman ]; then
  args+=(--format docker) # OCI images have no HEALTHCHECK
else
  export DOCKER_BUILDKIT=1 # build secrets
fi

say "building $IMAGE on $BASE with $ENGINE"
start=$(date +%s)
"$ENGINE" build "${args[@]}" .
took=$(($(date +%s) - start))
size=$("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE")
say "built $IMAGE in ${took}s: $((size / 1000000)) MB"

#!/usr/bin/env bash
# Build the mesolite/postgres:15 Docker image without any container registry.
#
# The root filesystem is created with debootstrap straight from the Debian
# package archive, trimmed, given our own entrypoint and then turned into an
# image with `docker import`.
#
# Environment:
#   FORCE=1          rebuild even if the image already exists
#   DEBIAN_MIRROR    Debian archive to bootstrap from
#                    (default http://deb.debian.org/debian)
#   IMAGE            image name (default mesolite/postgres:15)
#   KEEP_JIT=1       keep PostgreSQL's LLVM JIT provider (about +150MB)
set -euo pipefail

IMAGE="${IMAGE:-mesolite/postgres:15}"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PG_MAJOR=15
# postgresql-15 pulls in its client, postgresql-common, tzdata, locales, ...
# Everything the entrypoint needs (bash, setpriv from util-linux, gzip) is
# already part of minbase.
PACKAGES="postgresql-${PG_MAJOR}"

# Resolve our own directory so the script works from any cwd.
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[build.sh] %s\n' "$*"; }

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE already exists; nothing to do (set FORCE=1 to rebuild)"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "build.sh: debootstrap needs root; run this script as root (e.g. via sudo)" >&2
    exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    log "debootstrap not found; installing it with apt-get (apt-get update && apt-get install debootstrap)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi

start=$SECONDS
WORK="$(mktemp -d /var/tmp/mesolite-postgres.XXXXXX)"
ROOT="$WORK/root"

cleanup() {
    # debootstrap normally unmounts /proc, /sys, ... itself, but if it was
    # interrupted something may still be mounted inside the root. Unmount
    # those first (deepest first) so that rm can never reach the host's
    # /proc or /dev, and never cross into another file system anyway.
    if [ -d "$WORK" ]; then
        awk -v p="$WORK/" 'index($2, p) == 1 { print $2 }' /proc/mounts |
            sort -r | while read -r m; do umount -l "$m" || true; done
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT

log "bootstrapping Debian $SUITE (minbase + $PACKAGES) from $MIRROR into $ROOT"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" \
    > "$WORK/debootstrap.log" 2>&1 || {
    echo "build.sh: debootstrap failed; last lines of its log:" >&2
    tail -n 30 "$WORK/debootstrap.log" >&2
    exit 1
}
log "debootstrap finished after $((SECONDS - start))s"

log "trimming the root filesystem"
# postgresql-common's postinst created a default cluster "main"; the
# entrypoint runs initdb itself into $PGDATA, so drop it.
rm -rf "$ROOT/var/lib/postgresql/$PG_MAJOR" "$ROOT/etc/postgresql/$PG_MAJOR"
# Package lists, downloaded .debs and apt's binary caches can be regenerated.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin \
    "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/debconf/*-old
# Documentation and man/info pages are never used in a server container.
# (Keep copyright files: they are small and required by Debian's licenses.)
find "$ROOT/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/lintian
# Message translations (postgres runs with LANG=C.UTF-8, i.e. English);
# keep the files directly in /usr/share/locale such as locale.alias.
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
# The LLVM JIT provider is by far the largest part of the image (libLLVM,
# its z3 dependency and the bitcode files). Nothing but llvmjit.so links
# against them, and postgres checks for llvmjit.so before loading it: when
# the file is missing, JIT is silently disabled (pg_jit_available() = false)
# and queries simply run interpreted. Files are deleted rather than the
# packages purged so that dpkg/apt stay consistent in derived images.
if [ "${KEEP_JIT:-0}" != 1 ]; then
    rm -rf "$ROOT/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit.so" \
        "$ROOT/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit_types.bc" \
        "$ROOT/usr/lib/postgresql/$PG_MAJOR/lib/bitcode" \
        "$ROOT"/usr/lib/*-linux-gnu/libLLVM-*.so* \
        "$ROOT"/usr/lib/*-linux-gnu/libz3.so*
    chroot "$ROOT" /sbin/ldconfig
fi
# Logs from the installation, device nodes (docker provides /dev) and host
# specific files that debootstrap copied in (docker provides its own).
find "$ROOT/var/log" -type f -delete
rm -rf "${ROOT:?}"/dev/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
: > "$ROOT/etc/resolv.conf"
: > "$ROOT/etc/hostname"

log "installing docker-entrypoint.sh"
install -m 0755 "$HERE/docker-entrypoint.sh" "$ROOT/usr/local/bin/docker-entrypoint.sh"

old_id="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
log "importing the root filesystem as $IMAGE"
# --numeric-owner: keep the uids/gids of the image's own /etc/passwd (the
# postgres user), never map them through the host's user database.
tar --numeric-owner -C "$ROOT" -c . |
    docker import \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'CMD ["postgres"]' \
        --change "ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV PG_MAJOR=$PG_MAJOR" \
        --change 'ENV PGDATA=/var/lib/postgresql/data' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'EXPOSE 5432' \
        --message "mesolite postgres $PG_MAJOR built from Debian $SUITE with debootstrap" \
        - "$IMAGE" >/dev/null

id="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
# On a FORCE=1 rebuild drop the now untagged previous image, unless a
# container still uses it.
if [ -n "$old_id" ] && [ "$old_id" != "$id" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
log "done in $((SECONDS - start))s: $IMAGE id=$id size=$((size / 1000 / 1000))MB"

#!/bin/sh
# Make the base image `debian:bookworm-slim` on a machine that cannot pull from a registry.
#
#   codecs/seed-base-image.sh [TAG]        (default TAG: debian:bookworm-slim; needs root)
#
# It bootstraps a minimal Debian 12 root file system from the Debian package mirror
# (debootstrap --variant=minbase), trims it the way the official slim images are trimmed
# (no docs, man pages or locales; apt caches cleaned; no translations), and imports it
# with `docker import`. A no-op when the image is present already.
#
# Environment:
#   DEBIAN_MIRROR           the Debian mirror (default: the one in this machine's apt
#                           sources, else http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security
set -eu

TAG=${1:-debian:bookworm-slim}
SUITE=bookworm

if ! docker version >/dev/null 2>&1; then
    echo "seed-base-image: the Docker engine is not reachable (is dockerd running?)" >&2
    exit 1
fi
if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "seed-base-image: $TAG is present already"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "seed-base-image: debootstrap needs root; run: sudo $0 $TAG" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "seed-base-image: installing debootstrap"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

host_mirror() {
    # The first Debian (not security) mirror in the host's apt sources, one-line or deb822.
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null \
        | sed -n -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\/debian\/\{0,1\}\)[[:space:]].*/\2/p' \
                 -e 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\/\{0,1\}\)[[:space:]]*$/\1/p' \
        | head -n 1
}
MIRROR=${DEBIAN_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

ROOTFS=$(mktemp -d /tmp/seed-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT INT TERM

echo "seed-base-image: debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR"

# Trim like the official slim images.
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$ROOTFS/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' \
    >"$ROOTFS/etc/apt/apt.conf.d/docker-autoremove-suggests"
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS/usr/share/man/"* "$ROOTFS/usr/share/groff/"* "$ROOTFS/usr/share/info/"* \
       "$ROOTFS/usr/share/lintian/"* "$ROOTFS/usr/share/linda/"* \
       "$ROOTFS/var/cache/apt/"*.bin "$ROOTFS/var/cache/apt/archives/"*.deb \
       "$ROOTFS/var/lib/apt/lists/"* "$ROOTFS/var/log/"*.log \
       "$ROOTFS/var/cache/debconf/"*-old "$ROOTFS/var/lib/dpkg/"*-old
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
    -exec rm -rf {} +
: >"$ROOTFS/etc/machine-id"

echo "seed-base-image: importing as $TAG"
tar -C "$ROOTFS" -c --numeric-owner . \
    | docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
        --message "debootstrap --variant=minbase $SUITE, trimmed like -slim" - "$TAG"
docker image inspect --format '{{.Id}} {{.Size}} bytes' "$TAG"

#!/usr/bin/env bash
# Builds local stand-ins for the official .NET base images, for machines that cannot reach a container
# registry (CI here): Debian bookworm (debootstrap, minbase) plus this host's own .NET install
# (/usr/share/dotnet), committed into podman storage under the OFFICIAL names
#
#   mcr.microsoft.com/dotnet/aspnet:10.0   dotnet, host, shared (the runtimes); user app, uid 1654
#   mcr.microsoft.com/dotnet/sdk:10.0      the above plus sdk, sdk-manifests, packs, templates
#
# so that deploy/Dockerfile builds unchanged with `buildah bud --pull=never`. Like the official images they
# set APP_UID=1654, ASPNETCORE_HTTP_PORTS=8080 and DOTNET_RUNNING_IN_CONTAINER=true. The SDK stand-in also
# carries this host's CA bundle and NUGET_CERT_REVOCATION_MODE=offline, which NuGet restore inside a RUN
# needs here (NU1301 UntrustedRoot otherwise); that belongs to this machine, not to the project's Dockerfile.
#
# An image already present under either name (a stand-in from an earlier run, or a real pulled one) is
# kept; --force rebuilds the stand-ins. Every stand-in is labelled org.reaperproxy.stand-in=true.
# Needs root, podman, buildah, debootstrap (Debian packages of the same names). About 2-3 minutes.
set -euo pipefail

aspnet_image=mcr.microsoft.com/dotnet/aspnet:10.0
sdk_image=mcr.microsoft.com/dotnet/sdk:10.0
debian_image=localhost/reaperproxy-stand-in/debian:bookworm-slim
dotnet_root=/usr/share/dotnet
force=0
[[ "${1:-}" == "--force" ]] && force=1

for tool in podman buildah debootstrap; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "stand-in-images.sh: $tool not found on PATH (install the Debian package '$tool')" >&2
        exit 2
    fi
done
if [[ ! -x "$dotnet_root/dotnet" ]]; then
    echo "stand-in-images.sh: no .NET install at $dotnet_root to copy into the stand-ins" >&2
    exit 2
fi

have() { podman image exists "$1"; }

if (( !force )) && have "$aspnet_image" && have "$sdk_image"; then
    echo "stand-in-images.sh: $aspnet_image and $sdk_image present; nothing to build"
    exit 0
fi

# The Debian mirror this machine's apt uses (deb822 .sources first, then one-line lists).
mirror="$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
if [[ -z "$mirror" ]]; then
    mirror="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

tmp="$(mktemp -d)"
containers=()
cleanup() {
    for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

sdk_version="$("$dotnet_root/dotnet" --version 2>/dev/null || true)"
runtime_version="$(ls "$dotnet_root/shared/Microsoft.NETCore.App" | sort -V | tail -n 1)"
aspnet_version="$(ls "$dotnet_root/shared/Microsoft.AspNetCore.App" | sort -V | tail -n 1)"
labels=(--label org.reaperproxy.stand-in=true
        --label "org.opencontainers.image.description=local stand-in built by deploy/container/stand-in-images.sh from Debian bookworm and the host's .NET")

if (( force )) || ! have "$debian_image"; then
    SECONDS=0
    echo "== debootstrap bookworm (minbase) from $mirror"
    debootstrap --variant=minbase --include=ca-certificates,libicu72,libssl3,tzdata bookworm "$tmp/rootfs" "$mirror" \
        > "$tmp/debootstrap.log" 2>&1 || { tail -n 40 "$tmp/debootstrap.log" >&2; exit 1; }
    rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
    tar -C "$tmp/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$debian_image" >/dev/null
    rm -rf "$tmp/rootfs"
    echo "   $debian_image imported (${SECONDS}s)"
fi

if (( force )) || ! have "$aspnet_image"; then
    SECONDS=0
    echo "== $aspnet_image (runtime $runtime_version, ASP.NET Core $aspnet_version)"
    c="$(buildah from --pull=never "$debian_image")"; containers+=("$c")
    buildah run "$c" -- mkdir -p "$dotnet_root"
    for part in dotnet host shared LICENSE.txt ThirdPartyNotices.txt; do
        [[ -e "$dotnet_root/$part" ]] && buildah copy --quiet "$c" "$dotnet_root/$part" "$dotnet_root/$part" >/dev/null
    done
    buildah run "$c" -- ln -s "$dotnet_root/dotnet" /usr/bin/dotnet
    # As the official images: group and user "app", uid/gid 1654, with a home directory.
    buildah run "$c" -- sh -c 'if command -v useradd >/dev/null; then
            groupadd --gid=1654 app && useradd --no-log-init --uid=1654 --gid=1654 --create-home app
        else
            echo "app:x:1654:" >> /etc/group && echo "app:x:1654:1654::/home/app:/bin/sh" >> /etc/passwd &&
            mkdir -p /home/app && chown 1654:1654 /home/app
        fi'
    buildah config "${labels[@]}" \
        --env APP_UID=1654 --env ASPNETCORE_HTTP_PORTS=8080 --env DOTNET_RUNNING_IN_CONTAINER=true \
        --env DOTNET_VERSION="$runtime_version" --env ASPNET_VERSION="$aspnet_version" \
        --workingdir / "$c"
    buildah commit --quiet --rm "$c" "$aspnet_image" >/dev/null
    containers=()
    echo "   $aspnet_image committed (${SECONDS}s)"
fi

if (( force )) || ! have "$sdk_image"; then
    SECONDS=0
    echo "== $sdk_image (SDK $sdk_version)"
    c="$(buildah from --pull=never "$aspnet_image")"; containers+=("$c")
    for part in sdk sdk-manifests packs templates metadata; do
        [[ -e "$dotnet_root/$part" ]] && buildah copy --quiet "$c" "$dotnet_root/$part" "$dotnet_root/$part" >/dev/null
    done
    # This host's CA bundle (it may trust a CA that Debian's ca-certificates does not), for NuGet over HTTPS.
    buildah copy --quiet "$c" /etc/ssl/certs /etc/ssl/certs >/dev/null
    buildah config "${labels[@]}" \
        --env DOTNET_SDK_VERSION="$sdk_version" --env DOTNET_NOLOGO=true --env DOTNET_CLI_TELEMETRY_OPTOUT=1 \
        --env DOTNET_GENERATE_ASPNET_CERTIFICATE=false --env DOTNET_USE_POLLING_FILE_WATCHER=true \
        --env NUGET_XMLDOC_MODE=skip --env NUGET_CERT_REVOCATION_MODE=offline "$c"
    buildah commit --quiet --rm "$c" "$sdk_image" >/dev/null
    containers=()
    echo "   $sdk_image committed (${SECONDS}s)"
fi

podman images --filter label=org.reaperproxy.stand-in=true

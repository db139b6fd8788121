#!/usr/bin/env bash
# The release archive of kubectl-nautes for this machine, and a krew manifest
# that carries its sha256. `make dist` runs it after `cargo build --release`.
#
# Writes, in dist/ (or $NAUTES_DIST_DIR):
#   kubectl-nautes_v<version>_<os>_<arch>.tar.gz   kubectl-nautes and LICENSE at its root
#   kubectl-nautes_v<version>_<os>_<arch>.tar.gz.sha256
#   krew-manifest.yaml   krew-manifest.yaml with the sha256 of every platform
#                        whose archive (the file name of its `uri`) is in the
#                        directory: this machine's, plus any the release step
#                        copied there (e.g. archives built on other machines).
#                        The other platforms keep the placeholder digest.
# The `uri`s stay the release download URLs: the archive's name is the last
# part of its platform's `uri`. To install from the local file:
#   kubectl krew install --manifest=dist/krew-manifest.yaml --archive=dist/<archive>
#
# Environment:
#   NAUTES_DIST_BINARY  the binary to package (default target/release/kubectl-nautes)
#   NAUTES_DIST_DIR     the output directory (default dist/ in the repository)
#   SOURCE_DATE_EPOCH   file times in the archive (default: the last commit's time)
#
# No network. Linux and macOS (GNU or BSD tar); Windows archives are not made here.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary=${NAUTES_DIST_BINARY:-$root/target/release/kubectl-nautes}
dist=${NAUTES_DIST_DIR:-$root/dist}
manifest=$root/krew-manifest.yaml
license=$root/LICENSE
placeholder=0000000000000000000000000000000000000000000000000000000000000000

die() {
	echo "dist.sh: $*" >&2
	exit 1
}

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d' ' -f1
	else
		die "neither sha256sum nor shasum is installed"
	fi
}

[ -f "$binary" ] && [ -x "$binary" ] ||
	die "no executable at $binary: run 'cargo build --release' (or set NAUTES_DIST_BINARY)"
[ -f "$license" ] || die "no LICENSE at $license"
[ -f "$manifest" ] || die "no krew manifest at $manifest"

# the version: [package] version in Cargo.toml
version=$(awk '
	/^\[/ { in_package = ($0 == "[package]"); next }
	in_package && /^version[[:space:]]*=/ {
		v = $0
		sub(/^version[[:space:]]*=[[:space:]]*"/, "", v)
		sub(/".*$/, "", v)
		print v
		exit
	}' "$root/Cargo.toml")
[ -n "$version" ] || die "no [package] version in $root/Cargo.toml"
tag=v$version

# the binary must be the one this version builds
reported=$("$binary" version -o json | grep -o '"version":[[:space:]]*"[^"]*"' | head -n 1 |
	sed 's/.*"\([^"]*\)"$/\1/') || true
[ "$reported" = "$version" ] ||
	die "$binary reports version '${reported}', Cargo.toml says $version: rebuild it"

# the manifest must describe this version
manifest_version=$(sed -n 's/^[[:space:]]*version:[[:space:]]*"\{0,1\}\([^"[:space:]]*\)"\{0,1\}[[:space:]]*$/\1/p' "$manifest" | head -n 1)
[ "$manifest_version" = "$tag" ] ||
	die "krew-manifest.yaml has spec.version '${manifest_version}', Cargo.toml's version is $version (expected $tag)"
uris=$(sed -n 's/^[[:space:]]*uri:[[:space:]]*//p' "$manifest")
[ -n "$uris" ] || die "krew-manifest.yaml has no platform uri"
for uri in $uris; do
	case $uri in
	*/download/"$tag"/kubectl-nautes_"$tag"_*) ;;
	*) die "krew-manifest.yaml: uri $uri is not a $tag release archive" ;;
	esac
done

case $(uname -s) in
Linux) os=linux ;;
Darwin) os=darwin ;;
*) die "unsupported OS $(uname -s): this script packages Linux and macOS builds" ;;
esac
case $(uname -m) in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "unsupported machine $(uname -m)" ;;
esac

name=kubectl-nautes_${tag}_${os}_${arch}.tar.gz
printf '%s\n' "$uris" | grep -q "/$name\$" ||
	die "krew-manifest.yaml has no platform whose uri ends in $name"

mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
archive=$dist/$name
stage=$(mktemp -d "${TMPDIR:-/tmp}/nautes-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT

mkdir "$stage/root"
cp "$binary" "$stage/root/kubectl-nautes"
cp "$license" "$stage/root/LICENSE"
chmod 0755 "$stage/root/kubectl-nautes"
chmod 0644 "$stage/root/LICENSE"

# the same inputs give the same archive with GNU tar (BSD tar lacks the flags)
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
tar_flags=()
if tar --version 2>/dev/null | grep -q 'GNU tar'; then
	tar_flags=(--owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=ustar)
fi
(cd "$stage/root" && tar ${tar_flags[@]+"${tar_flags[@]}"} -cf - kubectl-nautes LICENSE) |
	gzip -n >"$stage/archive"
mv "$stage/archive" "$archive"
sum=$(sha256 "$archive")
printf '%s  %s\n' "$sum" "$name" >"$archive.sha256"

# the digest of every platform's archive found in $dist
: >"$stage/sums"
for uri in $uris; do
	file=${uri##*/}
	if [ -f "$dist/$file" ]; then
		printf '%s %s\n' "$file" "$(sha256 "$dist/$file")" >>"$stage/sums"
	fi
done

# krew-manifest.yaml with those digests, under a header of its own (the
# leading comment block of the source is dropped)
{
	echo "# Generated by scripts/dist.sh from krew-manifest.yaml: the sha256 of each"
	echo "# platform whose archive was in the output directory is filled in; a digest"
	echo "# of $placeholder"
	echo "# is a placeholder, not yet filled."
	awk '
		NR == FNR { sums[$1] = $2; next }
		!body && (/^#/ || /^[[:space:]]*$/) { next }
		{ body = 1 }
		/^[[:space:]]*uri:/ { file = $2; sub(/.*\//, "", file) }
		/^[[:space:]]*sha256:/ && (file in sums) {
			indent = $0
			sub(/sha256:.*/, "", indent)
			print indent "sha256: \"" sums[file] "\""
			file = ""
			next
		}
		{ print }
	' "$stage/sums" "$manifest"
} >"$stage/manifest"
grep -q "sha256: \"$sum\"" "$stage/manifest" || die "failed to fill the sha256 of $name into the manifest"
mv "$stage/manifest" "$dist/krew-manifest.yaml"

echo "wrote $archive"
echo "      sha256 $sum (also in $archive.sha256)"
echo "wrote $dist/krew-manifest.yaml, sha256 filled for:"
sed 's/^/      /' "$stage/sums"
unfilled=$(grep -c "sha256: \"$placeholder\"" "$dist/krew-manifest.yaml" || true)
if [ "$unfilled" -gt 0 ]; then
	echo "      ($unfilled platform(s) still have the placeholder digest: add their archives to $dist and run again)"
fi
echo "install it locally with:"
echo "  kubectl krew install --manifest=$dist/krew-manifest.yaml --archive=$archive"

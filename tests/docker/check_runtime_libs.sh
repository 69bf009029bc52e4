#!/bin/sh
# check_runtime_libs.sh BINARY DOCKERFILE
#
# Proves the runtime stage of the image installs every shared library the
# binary needs, without a Docker engine: for each library `ldd BINARY`
# resolves on this (Debian 12) machine, `dpkg -S` names its package, and that
# package must be
#   - one the runtime stage's `apt-get install` names, or
#   - pulled in by one of those through Depends/Pre-Depends (apt-cache
#     depends --recurse; Recommends are not installed, so they don't count), or
#   - part of debian:12-slim itself (the snapshot below, with its
#     dependencies).
# Prints "library -> package -> covered by" for each, and fails naming every
# package that nothing covers.
#
# This machine must be Debian 12 with the same -dev packages the build stage
# installs, so that ldd sees what the image would link against.
# Exit 0 covered, 1 missing packages or bad input, 77 (skip) for a
# sanitizer build, which is never what the image ships.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 BINARY DOCKERFILE" >&2
	exit 1
fi
binary=$1
dockerfile=$2
[ -x "$binary" ] || { echo "check_runtime_libs: $binary: no such executable (build the pruvan-bridge target first)" >&2; exit 1; }
[ -f "$dockerfile" ] || { echo "check_runtime_libs: $dockerfile: no such file" >&2; exit 1; }
for tool in ldd dpkg apt-cache awk; do
	command -v "$tool" >/dev/null 2>&1 || { echo "check_runtime_libs: needs $tool (a Debian host)" >&2; exit 1; }
done

# Packages of the debian:12-slim image (`dpkg-query -W -f '${Package}\n'`
# in debian:12-slim, bookworm). Their dependencies count as present too.
slim_base="adduser apt base-files base-passwd bash bsdutils coreutils dash
debconf debian-archive-keyring debianutils diffutils dpkg e2fsprogs findutils
gcc-12-base gpgv grep gzip hostname init-system-helpers libacl1
libapt-pkg6.0 libattr1 libaudit-common libaudit1 libblkid1 libbz2-1.0
libc-bin libc6 libcap-ng0 libcap2 libcom-err2 libcrypt1 libdb5.3
libdebconfclient0 libext2fs2 libffi8 libgcc-s1 libgcrypt20 libgmp10
libgnutls30 libgpg-error0 libhogweed6 libidn2-0 liblz4-1 liblzma5 libmd0
libmount1 libnettle8 libp11-kit0 libpam-modules libpam-modules-bin
libpam-runtime libpam0g libpcre2-8-0 libseccomp2 libselinux1
libsemanage-common libsemanage2 libsepol2 libsmartcols1 libss2 libstdc++6
libsystemd0 libtasn1-6 libtinfo6 libudev1 libunistring2 libxxhash0 libzstd1
login logsave mawk mount ncurses-base ncurses-bin passwd perl-base sed
sysvinit-utils tar usr-is-merged util-linux util-linux-extra zlib1g"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# --- the packages the runtime (last) stage installs ---------------------
# Join continuation lines, keep the last stage, take the words after each
# `apt-get install` up to the end of that command (&&, ;, |).
awk '{ if (sub(/\\[[:space:]]*$/, "")) { buf = buf $0 " "; next } print buf $0; buf = "" }' "$dockerfile" |
	awk 'toupper($1)=="FROM"{n=0} {l[n++]=$0} END{for(i=0;i<n;i++) print l[i]}' |
	awk '{
		for (i = 1; i <= NF; i++) {
			if ($i == "install" && i > 1 && $(i-1) ~ /apt(-get)?$/) {
				for (j = i + 1; j <= NF; j++) {
					if ($j == "&&" || $j == ";" || $j == "|" || $j == "||") break
					if ($j ~ /^-/) continue
					w = $j; sub(/[;]$/, "", w); sub(/=.*/, "", w)
					if (w != "") print w
				}
			}
		}
	}' | sort -u >"$tmp/listed"
if [ ! -s "$tmp/listed" ]; then
	echo "check_runtime_libs: found no 'apt-get install' in the last stage of $dockerfile" >&2
	exit 1
fi

# Depends/Pre-Depends closure of some packages, one name a line.
closure() {
	apt-cache depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
		awk '/^[^ ]/ { gsub(/[<>]/, ""); sub(/:.*/, ""); print }' | sort -u
}

: >"$tmp/covered" # package<TAB>covered-by
while read -r pkg; do
	if ! apt-cache show "$pkg" >/dev/null 2>&1; then
		echo "check_runtime_libs: the Dockerfile installs '$pkg', which is not a Debian 12 package" >&2
		exit 1
	fi
	closure "$pkg" | while read -r dep; do
		if [ "$dep" = "$pkg" ]; then
			printf '%s\tDockerfile (%s)\n' "$dep" "$pkg"
		else
			printf '%s\tdependency of %s\n' "$dep" "$pkg"
		fi
	done >>"$tmp/covered"
done <"$tmp/listed"
# shellcheck disable=SC2086
closure $slim_base | while read -r dep; do
	printf '%s\tdebian:12-slim\n' "$dep"
done >>"$tmp/covered"

# How a package is covered: named in the Dockerfile first, then the base
# image, then the first listed package that depends on it.
covered_by() {
	awk -F '\t' -v p="$1" '$1 == p {
		r = ($2 ~ /^Dockerfile/) ? 0 : ($2 == "debian:12-slim") ? 1 : 2
		print r "\t" $2
	}' "$tmp/covered" | sort -t "$(printf '\t')" -k1,1n -k2,2 | head -n 1 | cut -f 2
}

# --- what the binary needs ----------------------------------------------
if ! ldd "$binary" >"$tmp/ldd" 2>"$tmp/ldd.err"; then
	echo "check_runtime_libs: ldd $binary failed: $(cat "$tmp/ldd.err")" >&2
	exit 1
fi
if grep -Eq 'lib(asan|ubsan|tsan|lsan)\.so' "$tmp/ldd"; then
	echo "check_runtime_libs: SKIP: $binary is a sanitizer build; the image builds Release without sanitizers" >&2
	exit 77
fi
if grep -q 'not found' "$tmp/ldd"; then
	echo "check_runtime_libs: ldd cannot resolve every library:" >&2
	grep 'not found' "$tmp/ldd" >&2
	exit 1
fi

# dpkg knows a file under the path its package shipped it (/lib or /usr/lib
# on a merged-/usr system; a symlink or its target): try each spelling.
package_of() {
	lib=$1
	real=$(readlink -f "$lib" 2>/dev/null || echo "$lib")
	for p in "$lib" "$real"; do
		case "$p" in
		/usr/lib/*) alt=${p#/usr} ;;
		/lib/* | /lib64/*) alt=/usr$p ;;
		*) alt=$p ;;
		esac
		for q in "$p" "$alt"; do
			out=$(dpkg -S "$q" 2>/dev/null | head -n 1) || true
			if [ -n "$out" ]; then
				# "libc6:amd64: /lib/..." -> libc6 (diversions have no ':')
				printf '%s\n' "${out%%: /*}" | sed 's/:[a-z0-9_-]*$//; s/, .*//'
				return 0
			fi
		done
	done
	return 1
}

missing=0
printf '%-34s %-22s %s\n' "LIBRARY" "PACKAGE" "COVERED BY"
awk '/=>/ { print $3; next } $1 ~ /^\// { print $1 }' "$tmp/ldd" | sort -u >"$tmp/libs"
while read -r lib; do
	name=$(basename "$lib")
	if ! pkg=$(package_of "$lib"); then
		printf '%-34s %-22s %s\n' "$name" "?" "MISSING: no Debian package ships $lib" >&2
		echo "$name: not from any Debian package ($lib); the image cannot install it with apt-get" >>"$tmp/missing"
		missing=1
		continue
	fi
	by=$(covered_by "$pkg")
	if [ -z "$by" ]; then
		printf '%-34s %-22s %s\n' "$name" "$pkg" "MISSING"
		echo "$name: package $pkg is not installed by the runtime stage of $dockerfile (add it to its apt-get install)" >>"$tmp/missing"
		missing=1
	else
		printf '%-34s %-22s %s\n' "$name" "$pkg" "$by"
	fi
done <"$tmp/libs"

if [ -s "$tmp/missing" ]; then
	echo >&2
	echo "check_runtime_libs: FAIL: the runtime image would lack:" >&2
	sed 's/^/  /' "$tmp/missing" >&2
	exit 1
fi
echo "check_runtime_libs: OK: every library of $(basename "$binary") is installed by the runtime stage"

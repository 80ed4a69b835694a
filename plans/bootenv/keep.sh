#!/bin/sh
# keep.sh BE PATH...: copies each PATH, a file or a directory, from the
# running system into boot environment BE, which is mounted for the copy
# and unmounted however the copy ends. plans/bootenv.star installs it.
set -eu
be=$1
shift
mp=$(bectl mount "$be")
trap 'bectl umount "$be"' EXIT
for p; do
	if [ -d "$p" ]; then
		mkdir -p "$mp$p"
		cp -Rp "$p/." "$mp$p/"
	elif [ -e "$p" ]; then
		mkdir -p "$mp${p%/*}"
		cp -p "$p" "$mp$p"
	else
		echo "keep: $p does not exist on the running system" >&2
		exit 1
	fi
	echo "copied $p into $be"
done

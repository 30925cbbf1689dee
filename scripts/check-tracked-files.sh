#!/usr/bin/env bash
# Fails when git tracks a build output: a file over 1 MiB, or an executable
# binary (ELF, Mach-O, PE or a Go archive) whatever its size. Binaries and
# caches belong in .gitignore'd folders (bin/, .local/), never in history.
# Reads the index, so it checks what a commit would hold; deleted-but-staged
# files are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

limit=$((1024 * 1024))
bad=0
while IFS= read -r -d '' f; do
	[[ -f $f ]] || continue
	size=$(stat -c %s -- "$f")
	if ((size > limit)); then
		echo "tracked file over 1 MiB ($size bytes): $f" >&2
		bad=1
		continue
	fi
	# The first four bytes name the format of every executable we could build.
	magic=$(head -c 4 -- "$f" | od -An -tx1 | tr -d ' \n')
	case $magic in
	7f454c46 | cffaedfe | cefaedfe | feedface | feedfacf | 4d5a*)
		# 4d5a ("MZ") also starts some text; a PE has "PE\0\0" where the header points.
		if [[ $magic == 4d5a* ]] && ! grep -qaP 'PE\x00\x00' <(head -c 4096 -- "$f"); then
			continue
		fi
		echo "tracked executable binary: $f (remove it with git rm --cached and ignore it)" >&2
		bad=1
		;;
	213c6172) # "!<ar": a Go or C archive
		echo "tracked archive: $f" >&2
		bad=1
		;;
	esac
done < <(git ls-files -z)

if ((bad)); then
	echo "check-tracked-files: build outputs are tracked; see above" >&2
	exit 1
fi

#!/bin/sh
# Static analysis of Petrel's own C sources (src/ and bench/*.c): cppcheck
# and clang-tidy (the checks are in .clang-tidy), both from Debian 12.
# `make lint` runs it; CI runs it after the clang build. Exits non-zero on
# any finding, and prints each tool's count of findings and its time.
#
# Both read the compile commands of the clang build (build-clang/, CMake's
# CMAKE_EXPORT_COMPILE_COMMANDS), configured here if missing: nothing needs
# to be built first. LINT_BUILD chooses another build directory,
# LINT_JOBS the number of clang-tidy processes (default: nproc).
#
# False positives are suppressed where they are, with their reason:
# /* NOLINTNEXTLINE(check): why */ for clang-tidy, a comment and
# /* cppcheck-suppress id */ for cppcheck; the few suppressed everywhere
# are in .clang-tidy and .cppcheck-suppressions, each with its reason.
set -u
cd "$(dirname "$0")/.."

build=${LINT_BUILD:-build-clang}
jobs=${LINT_JOBS:-$(nproc 2>/dev/null || echo 2)}
tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

if ! command -v cppcheck >/dev/null || [ -z "$tidy" ]; then
	echo "lint: cppcheck and clang-tidy are needed (sh scripts/deps.sh)" >&2
	exit 2
fi
# Configure every time (a few seconds): the source globs are read again,
# so a file added since the last build is linted too.
CC=clang cmake -S . -B "$build" >"$out/cmake.log" 2>&1 || {
	cat "$out/cmake.log"
	exit 2
}

# The project's own translation units, from the compile commands: tests/
# and the fuzz targets are not linted.
/usr/bin/python3 - "$build/compile_commands.json" "$PWD" >"$out/files" <<'EOF'
import json, sys
root = sys.argv[2].rstrip('/') + '/'
seen = set()
for e in json.load(open(sys.argv[1])):
    f = e['file']
    rel = f[len(root):] if f.startswith(root) else f
    if (rel.startswith('src/') or rel.startswith('bench/')) and rel not in seen:
        seen.add(rel)
        print(f)
EOF
nfiles=$(wc -l <"$out/files")
if [ "$nfiles" -eq 0 ]; then
	echo "lint: no source file in $build/compile_commands.json" >&2
	exit 2
fi

# cppcheck. It names a file relative to the current directory when the
# build directory is under it, else by its absolute path: both filters.
# sys/queue.h is included by force: without it cppcheck cannot
# expand TAILQ_HEAD and friends and gives up on those files ("syntax
# error"); the other system headers stay out (slow, and not ours).
start=$(date +%s)
cppcheck --project="$build/compile_commands.json" \
    --file-filter='src/*' --file-filter='bench/*' \
    --file-filter="$PWD/src/*" --file-filter="$PWD/bench/*" \
    --include=/usr/include/x86_64-linux-gnu/sys/queue.h \
    --enable=warning,style,performance,portability \
    --suppressions-list=.cppcheck-suppressions --inline-suppr \
    -j "$jobs" -q --error-exitcode=1 \
    --template='{file}:{line}: {severity}: {message} [{id}]' \
    >"$out/cppcheck.out" 2>"$out/cppcheck.err"
cpp_rc=$?
cpp_time=$(($(date +%s) - start))
cat "$out/cppcheck.err"
cpp_n=$(grep -c ': \(error\|warning\|style\|performance\|portability\): ' \
    "$out/cppcheck.err")
if [ "$cpp_rc" -ne 0 ] && [ "$cpp_n" -eq 0 ]; then
	cat "$out/cppcheck.out"		# a bad option, not a finding
fi
echo "lint: cppcheck: $cpp_n findings in $nfiles files (${cpp_time}s)"

# clang-tidy, one file per process: given several files at once, clang-tidy
# 14 reports false "uninitialized va_list" (clang-analyzer-valist) in the
# later ones.
start=$(date +%s)
xargs -P "$jobs" -n 1 "$tidy" -p "$build" --quiet <"$out/files" \
    >"$out/tidy.out" 2>"$out/tidy.err"
tidy_rc=$?
tidy_time=$(($(date +%s) - start))
# A header's finding is reported once per file that includes it.
grep -E '^[^ ].*: (error|warning): ' "$out/tidy.out" | sort -u \
    >"$out/tidy.findings"
cat "$out/tidy.findings"
tidy_n=$(wc -l <"$out/tidy.findings")
if [ "$tidy_rc" -ne 0 ] && [ "$tidy_n" -eq 0 ]; then
	# Failed without a finding: a compile error or a crash; show it all.
	cat "$out/tidy.out" "$out/tidy.err"
fi
echo "lint: clang-tidy: $tidy_n findings in $nfiles files (${tidy_time}s," \
    "$jobs jobs)"

if [ "$cpp_rc" -ne 0 ] || [ "$tidy_rc" -ne 0 ] || [ "$cpp_n" -ne 0 ] ||
    [ "$tidy_n" -ne 0 ]; then
	echo "lint: FAILED"
	exit 1
fi
echo "lint: clean"

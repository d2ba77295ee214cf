#!/bin/sh
# Fails if C sources call a banned function (STYLE.md: "Buffers and
# strings"): each has a bounded or checked replacement in src/lib.
#   strcpy strcat strncpy strncat -> strlcpy/strlcat with a truncation check
#   sprintf vsprintf              -> snprintf, or struct buf / xasprintf
#   gets                          -> never
#   atoi atol atof                -> parse_u64() and friends
#   strtok                        -> a parser that keeps its own position
#   system                        -> never: Petrel runs no shell
#   alloca                        -> heap with a cap
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
banned='strcpy|strcat|sprintf|vsprintf|strncpy|strncat|gets|atoi|atol|atof|strtok|system|alloca'
hits=$(find "$root/src" "$root/tests/unit" "$root/tests/fuzz" "$root/bench" -name '*.[ch]' -print0 |
    xargs -0 grep -nE "(^|[^A-Za-z0-9_.>])($banned)[[:space:]]*\(" |
    grep -vE '^[^:]+:[0-9]+:[[:space:]]*(\*|/\*|//)')
if [ -n "$hits" ]; then
	echo "banned functions called (see STYLE.md):"
	echo "$hits"
	echo "1 failed, 0 passed"
	exit 1
fi
echo "check-banned: no banned function called in src/, tests/unit/, tests/fuzz/ and bench/"
echo "1 passed, 0 failed"
exit 0

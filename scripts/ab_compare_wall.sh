#!/bin/bash
# Wall time of one slobench command from two checkouts, alternated in one session (these machines are noisy:
# compare before/after on the same machine, interleaved). Prints "before S" / "after S" lines.
#
#   git worktree add /tmp/before <base-commit>
#   scripts/ab_compare_wall.sh /tmp/before . 3                        # compare --workload coding, 3 rounds
#   scripts/ab_compare_wall.sh /tmp/before . 3 bench sim -w chatbot   # any other command
#
# Both checkouts run with this checkout's virtual environment (.venv, or $PYTHON) and their own source tree
# first on PYTHONPATH. Output folders go to a temporary directory, removed at the end.
set -euo pipefail
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); rounds=${3:-3}; shift 3 || true
cmd=("$@"); [ ${#cmd[@]} -eq 0 ] && cmd=(compare --workload coding)
py=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for _ in $(seq 1 "$rounds"); do
  for side in before after; do
    dir=$before; [ "$side" = after ] && dir=$after
    extra=(); [ "${cmd[0]}" != bench ] && extra=(--out "$tmp/$side")
    start=$(date +%s.%N)
    (cd "$dir" && PYTHONPATH="$dir" "$py" -c 'import sys; from slobench.cli import main; sys.argv[0] = "slobench"; main()' \
      "${cmd[@]}" "${extra[@]}" > "$tmp/$side.log" 2>&1) || { echo "$side failed:"; tail -5 "$tmp/$side.log"; exit 1; }
    end=$(date +%s.%N)
    printf '%s %.1f\n' "$side" "$(echo "$end - $start" | bc)"
  done
done

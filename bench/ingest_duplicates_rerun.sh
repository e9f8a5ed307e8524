#!/usr/bin/env bash
# Rerun cost of a library holding copies (compilations): the real dev catalog twice, once as
# hard links ("albums") and once as byte copies ("compilation"), 242 files, 121 of them duplicates.
# Each side ingests once, then reruns twice with the page cache dropped (as after a night of other
# work: the duplicates' 362 MiB must come from disk if they are read at all). Run as root (drop_caches).
#
#   bench/ingest_duplicates_rerun.sh REALCAT_DIR WORKDIR [OLD_PKG]
#
# OLD_PKG: a folder whose artdb/ points at an older checkout (e.g. `git worktree add /work/wt-old
# 4ee54ac` and symlinks artdb/{cli,core,db,indexer,migrations} -> it), run via PYTHONPATH, to
# compare with the code before duplicate files were remembered. Writes WORKDIR/result.json.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cat_dir=$1 work=$2 old=${3:-}
py="$here/.venv/bin/python"
mkdir -p "$work" && cd "$work"
rm -rf lib h-* ./*.json
mkdir lib && cp -al "$cat_dir/audio" lib/albums && cp -r "$cat_dir/audio" lib/compilation
"$py" - "$cat_dir/manifest.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open("lib.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=rows[0].keys()); w.writeheader()
    for sub in ("albums", "compilation"):
        for r in rows:
            w.writerow({**r, "path": f"{sub}/{r['path']}"})
PY
side() {  # side NAME [PYTHONPATH]
  local h="h-$1"
  PYTHONPATH="${2:-}" "$py" -m artdb.cli.main --home "$h" index lib --manifest lib.csv --json > "$h-first.json"
  for i in 1 2; do
    sync; echo 3 > /proc/sys/vm/drop_caches
    PYTHONPATH="${2:-}" "$py" -m artdb.cli.main --home "$h" index lib --manifest lib.csv --json > "$h-rerun$i.json"
  done
}
side new
[ -n "$old" ] && side old "$old"
"$py" - <<'PY'
import glob, json, os
out = {"what": "ingest of 242 files (121 duplicates), then two reruns with the page cache dropped",
       "cpus": os.cpu_count(), "load_average_end": os.getloadavg(), "sides": {}}
for first in sorted(glob.glob("h-*-first.json")):
    name = first[2:-len("-first.json")]
    runs = [json.load(open(f"h-{name}-{f}.json")) for f in ("first", "rerun1", "rerun2")]
    out["sides"][name] = [{"counts": r["counts"], "seconds": round(r["seconds"], 3)} for r in runs]
json.dump(out, open("result.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY

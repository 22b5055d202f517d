#!/bin/sh
# Merges the files `central-hub broker-files` wrote on several hubs into one set for the broker they share.
#   merge-broker-files.sh OUT DIR1 DIR2 ...
# broker-files writes the logins of the hub whose hub.toml it read (its [mqtt] username and username-sync) and
# every agent's; with N hubs, each with its own username, the broker needs all N pairs. Agents' lines are the
# same in every DIR (they come from the shared database); each login is kept once, from the first DIR that has
# it. OUT gets passwd, acl and checkpoint.conf (pointing at OUT's files), all 0600.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OUT DIR1 [DIR2 ...]" >&2; exit 2; }
out=$1; shift
umask 077
mkdir -p "$out"
out=$(cd "$out" && pwd)
for d in "$@"; do
    [ -f "$d/passwd" ] && [ -f "$d/acl" ] || { echo "$d: no passwd or acl (run broker-files there)" >&2; exit 1; }
done
for d in "$@"; do cat "$d/passwd"; done | awk -F: 'NF && !seen[$1]++' > "$out/passwd.new"
# acl: blocks start at a `user` line and run to the next one; comments before the first block are kept once.
for d in "$@"; do cat "$d/acl"; done | awk '
    /^user / { u = $2; keep = !seen[u]++; if (keep) { if (n++) print ""; print } next }
    /^#/ { if (!hdr[$0]++) print; next }
    keep && NF { print }
' > "$out/acl.new"
mv "$out/passwd.new" "$out/passwd"
mv "$out/acl.new" "$out/acl"
printf 'allow_anonymous false\nuse_username_as_clientid true\npassword_file %s/passwd\nacl_file %s/acl\n' \
    "$out" "$out" > "$out/checkpoint.conf"
echo "merged $# sets into $out: $(grep -c '^user ' "$out/acl") logins"

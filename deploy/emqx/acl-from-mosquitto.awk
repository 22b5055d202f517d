# Turns the Mosquitto acl_file that `central-hub broker-files` writes (or merge-broker-files.sh merged) into an
# EMQX 5 ACL file (Erlang terms, matched top to bottom, first match wins):
#   awk -f acl-from-mosquitto.awk /etc/checkpoint/broker/acl > /etc/emqx/checkpoint-acl.conf
# `topic read F` becomes a subscribe grant on F, `topic write F` a publish grant; the file ends in
# {deny, all}, so like Mosquitto's ACL anything not granted is refused. The hubs' read grant (checkpoint/#) is
# also written with their shared-subscription prefix, so it holds whether EMQX checks a $share/... subscription
# as written or by its topic alone.
BEGIN {
    print "%% Written from central-hub's broker-files acl by acl-from-mosquitto.awk; regenerate, do not edit."
}
/^user / { user = $2; next }
/^topic (read|write) / {
    if (user == "") { print "acl line outside a user block: " $0 > "/dev/stderr"; exit 1 }
    filter = $3
    if ($2 == "read" && filter == "checkpoint/#") {
        printf "{allow, {username, \"%s\"}, subscribe, [\"%s\", \"$share/checkpoint-hub/%s\"]}.\n", user, filter, filter
    } else if ($2 == "read") {
        printf "{allow, {username, \"%s\"}, subscribe, [\"%s\"]}.\n", user, filter
    } else {
        printf "{allow, {username, \"%s\"}, publish, [\"%s\"]}.\n", user, filter
    }
    next
}
/^[[:space:]]*(#|$)/ { next }
{ print "unexpected acl line: " $0 > "/dev/stderr"; exit 1 }
END { print "{deny, all}." }

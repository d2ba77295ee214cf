#!/bin/sh
# capture.sh: run a throwaway Postfix (3.7, Debian's) in its own network
# namespace and print its mailq for a queue like test_queue_cli.py's:
# three deferred messages ("Network is unreachable": the namespace has
# only loopback), one from <> with two recipients, one on hold.
#   unshare -n env D=/tmp/pfx LONG=yes sh capture.sh
# writes $D/out-$LONG.txt (then empties the queue: $D/empty.txt). Root
# only; Postfix never listens beyond the namespace's loopback. The files
# beside this script came from LONG=yes, LONG=no and the empty queue.
set +e
ip link set lo up
D=${D:-/tmp/pfx}
rm -rf $D/etc $D/spool $D/data
mkdir -p $D/etc $D/spool $D/data; chown postfix $D/data; touch $D/maillog; chmod 666 $D/maillog
cp /etc/postfix/master.cf $D/etc/ 2>/dev/null || cp /usr/share/postfix/master.cf.dist $D/etc/master.cf
cat > $D/etc/main.cf <<EOC
compatibility_level = 3.6
queue_directory = $D/spool
data_directory = $D/data
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
mydestination =
smtpd_relay_restrictions = reject
enable_long_queue_ids = $LONG
maillog_file = $D/maillog
maillog_file_prefixes = /tmp
alternate_config_directories = $D/etc
disable_dns_lookups = yes
smtp_host_lookup = native
EOC
postfix -c $D/etc check || true
postfix -c $D/etc start
sleep 2
printf 'Subject: one\n\nhello\n' | sendmail -C $D/etc -f alice@example.org bob@[192.0.2.1]
printf 'Subject: two\n\nhello there this is a longer message\n' | sendmail -C $D/etc -f '' carol@[192.0.2.1] dave@[192.0.2.2]
printf 'Subject: three\n\nhello\n' | sendmail -C $D/etc -f held@example.org erin@[192.0.2.1]
# Until all four recipients have their deferral reason (at most 30 s).
for i in $(seq 60); do
	n=$(postqueue -c $D/etc -p | grep -c '^ *(')
	[ "$n" -ge 4 ] && break
	sleep 0.5
done
ID3=$(postqueue -c $D/etc -j | python3 -c 'import sys,json; [print(j["queue_id"]) for j in map(json.loads,sys.stdin) if j["sender"]=="held@example.org"]')
postsuper -c $D/etc -h $ID3
sleep 1
echo "=== postqueue -p"
postqueue -c $D/etc -p > $D/out-$LONG.txt; cat -A $D/out-$LONG.txt
echo "=== postqueue -j"
postqueue -c $D/etc -j
echo "=== mailq"
mailq -C $D/etc | cat -A || true
postsuper -c $D/etc -d ALL
sleep 1
echo "=== empty"
postqueue -c $D/etc -p > $D/empty.txt
postfix -c $D/etc stop

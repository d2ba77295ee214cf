#!/bin/sh
# Install the Debian packages that building and testing Petrel need, and the
# system user the daemon runs as. Idempotent: packages already installed are
# skipped, so `make check` can call it every time at almost no cost.
#
# It never lets a package start a daemon: postfix is preseeded as "No
# configuration", and a temporary /usr/sbin/policy-rc.d (exit 101) blocks
# service start-up while apt runs, so no system Postfix or Dovecot ends up
# listening on the ports the tests use.
set -eu

PACKAGES="
build-essential
cmake
pkg-config
clang
libclang-rt-14-dev
clang-tidy
cppcheck
libevent-dev
libunbound-dev
dns-root-data
libpsl-dev
publicsuffix
libssl-dev
libcmocka-dev
libcrypt-dev
libseccomp-dev
python3
python3-pytest
python3-pytest-timeout
python3-dnslib
python3-dnspython
swaks
libnet-ssleay-perl
libio-socket-ssl-perl
postfix
dovecot-core
dovecot-imapd
dovecot-lmtpd
dovecot-pop3d
strace
eatmydata
openssl
iproute2
util-linux
fail2ban
whois
ssl-cert
libmail-dkim-perl
libcryptx-perl
opendkim-tools
python3-dkim
python3-spf
python3-yaml
python3-authres
python3-prometheus-client
groff-base
man-db
logrotate
systemd
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
	    grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing packages:$missing; run this script as root" >&2
		exit 1
	fi
	echo "deps.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	echo "postfix postfix/mailname string localhost" |
	    debconf-set-selections

	created_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	cleanup() {
		if [ "$created_policy" -eq 1 ]; then
			rm -f /usr/sbin/policy-rc.d
		fi
	}
	trap cleanup EXIT INT TERM

	tries=0
	until apt-get -o DPkg::Lock::Timeout=600 update -q; do
		tries=$((tries + 1))
		if [ "$tries" -ge 5 ]; then
			echo "deps.sh: apt-get update failed $tries times" >&2
			exit 1
		fi
		sleep $((tries * 5))
	done
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=600 install -y -q \
	    --no-install-recommends $missing
	# Packages may have started services despite policy-rc.d (they do not
	# when it is present, but a pre-existing system may differ): stop them.
	# fail2ban is here for its fail2ban-regex (the contrib/fail2ban test),
	# not for its daemon. dovecot-imapd, -lmtpd and -pop3d have no service
	# of their own: they run under "dovecot".
	for svc in postfix dovecot fail2ban; do
		if command -v systemctl >/dev/null 2>&1; then
			systemctl stop "$svc" >/dev/null 2>&1 || true
			systemctl disable "$svc" >/dev/null 2>&1 || true
		fi
	done
fi

# The unprivileged user the daemon drops to after binding its ports.
if [ "$(id -u)" -eq 0 ] && ! getent passwd petrel >/dev/null; then
	if ! getent group petrel >/dev/null; then
		groupadd --system petrel
	fi
	useradd --system --gid petrel --home-dir /nonexistent \
	    --no-create-home --shell /usr/sbin/nologin petrel
	echo "deps.sh: created system user petrel"
fi
# issue 6: the group of the maildrop (1730 petrel:petreldrop) and of the
# setgid petrel-postdrop that writes it while the daemon is down.
if [ "$(id -u)" -eq 0 ] && ! getent group petreldrop >/dev/null; then
	groupadd --system petreldrop
fi
exit 0

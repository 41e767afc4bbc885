#!/usr/bin/env bash
# The benchmark's peers: Debian's Postfix delivering over LMTP to Debian's Dovecot, both on
# loopback only, on non-default ports, with configuration and state in one temporary
# directory. Nothing is enabled in systemd and nothing is left running.
#
# Sourced (by benches/compare.sh) it defines:
#   peers_install                  apt-get install, services kept from starting meanwhile
#   peers_configure DIR DOMAIN     writes configs into DIR, sets the PEER_* variables
#   peers_add_user DIR ADDRESS PHC adds a Dovecot passwd-file user (PHC: an argon2id string)
#   peers_start DIR / peers_stop DIR   start and stop both, waiting for readiness / exit
#   peers_pids DIR                 pids of every Postfix and Dovecot process of this instance
# Run directly: `setup.sh install`, or `setup.sh demo` (configure, start, probe, stop).
#
# Choices: Postfix's master runs as root (Postfix needs it) with mail_owner `postfix`;
# Dovecot's master runs as root with its usual unprivileged helpers, and the mailboxes
# belong to a dedicated system user `lbbench`. Dovecot's fsync settings are its defaults
# (mail_fsync = optimized: fsync on save). Postfix's queue fsyncs as always.
set -euo pipefail

PEER_MAIL_USER=lbbench

peers_install() {
  local need=() p
  for p in postfix dovecot-core dovecot-pop3d dovecot-imapd dovecot-lmtpd; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Keep the packages' init scripts from starting system-wide daemons during install.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
  fi
  getent passwd "$PEER_MAIL_USER" >/dev/null ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PEER_MAIL_USER"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# peers_configure DIR DOMAIN: sets PEER_SMTP_PORT PEER_POP3_PORT PEER_IMAP_PORT PEER_LMTP_PORT.
peers_configure() {
  local dir=$1 domain=$2 uid gid
  uid=$(id -u "$PEER_MAIL_USER")
  gid=$(id -g "$PEER_MAIL_USER")
  PEER_SMTP_PORT=$(free_port)
  PEER_POP3_PORT=$(free_port)
  PEER_IMAP_PORT=$(free_port)
  PEER_LMTP_PORT=$(free_port)
  export PEER_SMTP_PORT PEER_POP3_PORT PEER_IMAP_PORT PEER_LMTP_PORT
  # Postfix and Dovecot's unprivileged processes must reach into DIR (and its parents).
  chmod 755 "$dir"
  mkdir -p "$dir/postfix" "$dir/postfix-queue" "$dir/postfix-data" "$dir/dovecot-run" \
    "$dir/dovecot-state" "$dir/mail"
  chown "$uid:$gid" "$dir/mail"
  chown postfix "$dir/postfix-data"
  : >"$dir/dovecot-users"
  chmod 644 "$dir/dovecot-users"

  cat >"$dir/postfix/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/postfix-queue
data_directory = $dir/postfix-data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.$domain
mydomain = $domain
myorigin = \$mydomain
mydestination = $domain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
local_transport = lmtp:inet:127.0.0.1:$PEER_LMTP_PORT
relayhost =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
append_dot_mydomain = no
biff = no
readme_directory = no
smtputf8_enable = no
maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir
alias_maps =
alias_database =
smtp_dns_support_level = disabled
EOF
  # Every service unchrooted (the queue is in a temp dir); smtpd on a loopback port.
  cat >"$dir/postfix/master.cf" <<EOF
127.0.0.1:$PEER_SMTP_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

  cat >"$dir/dovecot.conf" <<EOF
protocols = pop3 imap lmtp
listen = 127.0.0.1
base_dir = $dir/dovecot-run
state_dir = $dir/dovecot-state
instance_name = lbbench
log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
last_valid_gid = $gid
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = scheme=ARGON2ID username_format=%u $dir/dovecot-users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/dovecot-users
  default_fields = uid=$uid gid=$gid home=$dir/mail/%d/%n
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $PEER_POP3_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PEER_IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
# The IMAP benchmark's 100 idling clients all come from 127.0.0.1, 10 per account:
# room for them (and for sessions of the previous run still ending) above Dovecot's
# defaults (10 per user and IP, 100 imap processes). Letterbox's per-IP cap is raised too.
protocol imap {
  mail_max_userip_connections = 40
  # COMPRESS=DEFLATE (RFC 4978), for the compressed first-sync rows.
  mail_plugins = \$mail_plugins imap_zlib
}
service imap {
  process_limit = 400
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $PEER_LMTP_PORT
  }
  unix_listener lmtp {
    mode = 0600
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
EOF
}

# peers_add_user DIR ADDRESS PHC
peers_add_user() {
  local dir=$1 address=$2 phc=$3
  printf '%s:{ARGON2ID}%s::::::\n' "$address" "$phc" >>"$dir/dovecot-users"
}

# Waits (bounded, 10 s) until 127.0.0.1:PORT accepts a connection.
wait_port() {
  local port=$1 i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listening on 127.0.0.1:$port after 10 s" >&2
  return 1
}

peers_start() {
  local dir=$1
  dovecot -c "$dir/dovecot.conf"
  # Postfix writes its errors to stderr only on a terminal: keep its log on failure.
  if ! postfix -c "$dir/postfix" start >>"$dir/postfix.start.log" 2>&1; then
    echo "postfix did not start:" >&2
    cat "$dir/postfix.start.log" "$dir/postfix.log" >&2 2>/dev/null || true
    return 1
  fi
  wait_port "$PEER_POP3_PORT"
  wait_port "$PEER_IMAP_PORT"
  wait_port "$PEER_LMTP_PORT"
  wait_port "$PEER_SMTP_PORT"
}

# Pids of this instance's processes: Dovecot's master and its children, Postfix's master
# and its children.
peers_pids() {
  local dir=$1 master p
  for master in "$dir/dovecot-run/master.pid" "$dir/postfix-data/master.pid" \
    "$dir/postfix-queue/pid/master.pid"; do
    [[ -s $master ]] || continue
    p=$(tr -d ' \n' <"$master")
    [[ -d /proc/$p ]] || continue
    echo "$p"
    pgrep -P "$p" || true
  done | sort -u
}

peers_stop() {
  local dir=$1 i
  postfix -c "$dir/postfix" stop 2>/dev/null || true
  if [[ -s $dir/dovecot-run/master.pid ]]; then
    doveadm -c "$dir/dovecot.conf" stop 2>/dev/null ||
      kill "$(cat "$dir/dovecot-run/master.pid")" 2>/dev/null || true
  fi
  for i in $(seq 1 100); do
    [[ -z $(peers_pids "$dir") ]] && return 0
    sleep 0.1
  done
  echo "peers still running after 10 s: killing $(peers_pids "$dir" | tr '\n' ' ')" >&2
  peers_pids "$dir" | xargs -r kill -KILL 2>/dev/null || true
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case ${1:-} in
  install) peers_install ;;
  demo)
    peers_install
    demo_dir=$(mktemp -d)
    trap 'peers_stop "$demo_dir"; rm -rf "$demo_dir"' EXIT
    peers_configure "$demo_dir" bench.test
    peers_start "$demo_dir"
    echo "postfix smtp 127.0.0.1:$PEER_SMTP_PORT, dovecot pop3 $PEER_POP3_PORT imap $PEER_IMAP_PORT lmtp $PEER_LMTP_PORT"
    echo "processes: $(peers_pids "$demo_dir" | wc -l)"
    ;;
  *)
    echo "usage: $0 install|demo" >&2
    exit 2
    ;;
  esac
fi

//! The documented configuration files: `letterbox.example.toml` (every key at its host default)
//! and `image/letterbox.toml` (the same keys at the appliance defaults, with the first-boot
//! notes the SD card needs). Both are generated from this module, never written by hand:
//! `letterbox check-config --example [--appliance]` prints them, and tests fail when a key the
//! parser accepts is missing here, when a value shown as a default is not the default
//! ([`super::Config::base`]), or when a committed file differs from what this module prints.
//!
//! Conventions of the output: `#key = value` is a key at its default (remove the `#` to set
//! it); lines starting with `# ` are explanations or examples.

use std::fmt::Write as _;
use std::time::Duration;

use super::{AUTO_BOARD, Config, SIM_BOARD};

/// Which file to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `letterbox.example.toml`: a development host (board `sim`), every key commented.
    Host,
    /// `image/letterbox.toml`: the SD card's file, `[board] name = "auto"` set.
    Appliance,
}

/// How one key is shown.
enum Shown {
    /// `#key = <the default, rendered from Config::base>`.
    Default(fn(&Config) -> String),
    /// The key has no fixed default (absent, or derived at run time): only an example, as a
    /// `# key = value` comment line.
    Example(&'static str),
}

/// One key: its name, what it does, and how it is shown.
struct Key {
    name: &'static str,
    doc: &'static str,
    shown: Shown,
}

/// One table (`[name]`, or `[[name]]` when `array`).
struct Table {
    name: &'static str,
    /// An array of tables (`[[user]]`): shown only as a commented example.
    array: bool,
    /// A table whose presence means something (`[relay]`): its header is commented.
    optional: bool,
    doc: &'static str,
    keys: &'static [Key],
}

use Shown::{Default as D, Example as E};

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| q(&s)).collect();
    format!("[{}]", items.join(", "))
}

fn addr(a: Option<std::net::SocketAddr>) -> String {
    q(&a.map(|a| a.to_string()).unwrap_or_default())
}

/// `"5m"`, `"30m"`, `"2h"` or `"45s"`: the largest unit that divides the duration.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        q(&format!("{}h", s / 3600))
    } else if s.is_multiple_of(60) {
        q(&format!("{}m", s / 60))
    } else {
        q(&format!("{s}s"))
    }
}

/// `"50M"`: the largest binary multiple that divides the size.
fn size(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (m, u) in UNITS {
        if n >= m && n.is_multiple_of(m) {
            return q(&format!("{}{u}", n / m));
        }
    }
    n.to_string()
}

const TABLES: &[Table] = &[
    Table {
        name: "board",
        array: false,
        optional: false,
        doc: "",
        keys: &[Key {
            name: "name",
            doc: "The board file in board/ that names the LED and button GPIO lines: \"rpi3\", \
                  \"rpi4\", \"rpi5\", \"rpi-zero2w\", \"auto\" (the Pi model the kernel \
                  reports; on anything else, such as QEMU, the appliance runs without LEDs), or \
                  \"sim\" for the simulated board of a development host. Any board but \"sim\" \
                  selects the appliance defaults.",
            shown: D(|c| q(&c.board.name)),
        }],
    },
    Table {
        name: "user",
        array: true,
        optional: true,
        doc: "[[user]]: the mail accounts to create, one table each. Write the password here \
              before the first start: at start the daemon creates the account (or sets the \
              password of an existing one) and then ERASES the password from this file, \
              leaving a comment in its place. Passwords have at least 8 characters. Without \
              any [[user]], the first start creates postmaster@<your domain> with a random \
              password and prints it once.",
        keys: &[
            Key {
                name: "address",
                doc: "",
                shown: E("\"alice@home.arpa\""),
            },
            Key {
                name: "password",
                doc: "",
                shown: E("\"choose a long passphrase\""),
            },
            Key {
                name: "aliases",
                doc: "",
                shown: E("[\"postmaster@home.arpa\", \"info@home.arpa\"]"),
            },
        ],
    },
    Table {
        name: "ssh",
        array: false,
        optional: false,
        doc: "Remote shell access for administration on the SD-card image (`letterbox \
              status`, `letterbox user ...`), read by the image, not by the daemon. Off unless \
              enabled here; only the public keys listed here may log in (as root), never a \
              password.",
        keys: &[
            Key {
                name: "enabled",
                doc: "",
                shown: D(|c| c.ssh.enabled.to_string()),
            },
            Key {
                name: "authorized_keys",
                doc: "",
                shown: E("[\"ssh-ed25519 AAAAC3Nza... me@laptop\"]"),
            },
        ],
    },
    Table {
        name: "server",
        array: false,
        optional: false,
        doc: "",
        keys: &[
            Key {
                name: "domains",
                doc: "The mail domains this box receives mail for; the first one is the \
                      primary domain (the postmaster account and the default for new users). \
                      Default: the home.arpa domain reserved for home networks (RFC 8375). \
                      Example: domains = [\"example.org\", \"example.net\"]",
                shown: D(|c| list(c.server.domains.iter().cloned())),
            },
            Key {
                name: "hostname",
                doc: "The host name in SMTP greetings, Received: headers and the household \
                      certificate. Default: \"letterbox.\" followed by the primary domain.",
                shown: D(|c| q(&c.server.hostname)),
            },
            Key {
                name: "data_dir",
                doc: "The database, DKIM keys and generated certificate.",
                shown: D(|c| q(&c.server.data_dir.display().to_string())),
            },
        ],
    },
    Table {
        name: "listen",
        array: false,
        optional: false,
        doc: "\"ip:port\" for each service (\"[::]:993\" listens on IPv6 and IPv4); \"\" \
              disables the service.",
        keys: &[
            Key {
                name: "smtp",
                doc: "SMTP for mail from the internet (forward TCP port 25 of your router to \
                      this box).",
                shown: D(|c| addr(c.listen.smtp)),
            },
            Key {
                name: "submission",
                doc: "Submission for your own mail apps: STARTTLS (RFC 6409), and implicit \
                      TLS (RFC 8314).",
                shown: D(|c| addr(c.listen.submission)),
            },
            Key {
                name: "submissions",
                doc: "",
                shown: D(|c| addr(c.listen.submissions)),
            },
            Key {
                name: "imap",
                doc: "IMAP with STARTTLS, and IMAP over TLS.",
                shown: D(|c| addr(c.listen.imap)),
            },
            Key {
                name: "imaps",
                doc: "",
                shown: D(|c| addr(c.listen.imaps)),
            },
            Key {
                name: "pop3",
                doc: "POP3 with STLS, and POP3 over TLS.",
                shown: D(|c| addr(c.listen.pop3)),
            },
            Key {
                name: "pop3s",
                doc: "",
                shown: D(|c| addr(c.listen.pop3s)),
            },
            Key {
                name: "http",
                doc: "HTTP: only redirects to HTTPS, except the client autoconfiguration \
                      (Thunderbird, Outlook), which must be reachable in plain HTTP.",
                shown: D(|c| addr(c.listen.http)),
            },
            Key {
                name: "https",
                doc: "HTTPS: the box's public page (status, certificate, setup links for mail \
                      apps) and the client autoconfiguration, with the mail certificate.",
                shown: D(|c| addr(c.listen.https)),
            },
        ],
    },
    Table {
        name: "tls",
        array: false,
        optional: false,
        doc: "PEM files of your own certificate chain and private key: set both or neither; \
              they win over everything else. SIGHUP reloads them. Without them the box makes \
              its own household CA once (data_dir/tls/ca.pem: install it once on each device) \
              and a server certificate signed by it for the host name, <host>.local, \
              autoconfig./autodiscover. + the primary domain and the LAN addresses, renewed by \
              itself at two thirds of its lifetime.",
        keys: &[
            Key {
                name: "cert",
                doc: "",
                shown: E("\"/etc/letterbox/fullchain.pem\""),
            },
            Key {
                name: "key",
                doc: "",
                shown: E("\"/etc/letterbox/privkey.pem\""),
            },
            Key {
                name: "lifetime",
                doc: "The household server certificate's lifetime: seconds, or \"30s\", \"5m\", \
                      \"2h\". At most and by default 397 days (9528h); tests shorten it to see \
                      renewals.",
                shown: E("\"9528h\""),
            },
        ],
    },
    Table {
        name: "auth",
        array: false,
        optional: false,
        doc: "",
        keys: &[Key {
            name: "plaintext_networks",
            doc: "Networks (CIDR) from which passwords are accepted without TLS (LOGIN, \
                  USER/PASS, AUTH PLAIN). Everywhere else passwords only travel inside TLS. \
                  Default: this box itself only. Example, to let old printers on the LAN log \
                  in: [\"127.0.0.0/8\", \"::1/128\", \"192.168.1.0/24\"]",
            shown: D(|c| list(c.auth.plaintext_networks.iter().map(|n| n.to_string()))),
        }],
    },
    Table {
        name: "dns",
        array: false,
        optional: false,
        doc: "",
        keys: &[Key {
            name: "nameservers",
            doc: "Name servers (\"ip:port\", or \"ip\" for port 53) for MX, SPF, DKIM and \
                  DMARC lookups. Empty: the system resolver. Example: [\"192.168.1.1\", \
                  \"9.9.9.9:53\"]",
            shown: D(|c| list(c.dns.nameservers.iter().map(|n| n.to_string()))),
        }],
    },
    Table {
        name: "relay",
        array: false,
        optional: true,
        doc: "[relay]: send all outgoing mail through your provider's server (\"smarthost\"), \
              for when your ISP blocks port 25. Without this section mail goes straight to \
              each recipient's MX.",
        keys: &[
            Key {
                name: "host",
                doc: "",
                shown: E("\"smtp.provider.example\""),
            },
            Key {
                name: "port",
                doc: "Default port: 587 with starttls, 465 with tls, 25 with none.",
                shown: E("587"),
            },
            Key {
                name: "username",
                doc: "The password is read from password_file (surrounding whitespace, such as \
                      a final newline, is ignored). Set both username and password_file, or \
                      neither.",
                shown: E("\"me@provider.example\""),
            },
            Key {
                name: "password_file",
                doc: "",
                shown: E("\"/etc/letterbox/relay-password\""),
            },
            Key {
                name: "security",
                doc: "\"starttls\" (default), \"tls\", or \"none\" (not allowed with a \
                      password).",
                shown: E("\"starttls\""),
            },
        ],
    },
    Table {
        name: "queue",
        array: false,
        optional: false,
        doc: "Outbound delivery. Failed deliveries are retried after 5 min, 15 min, 30 min, \
              1 h, 2 h, then every 4 h, for 5 days (RFC 5321 4.5.4.1); retry_scale multiplies \
              all of these (tests only: 0.001). mx_port is the port of direct MX delivery \
              (tests only). timeout is how long to wait for a remote server's connection and \
              each reply (RFC 5321 4.5.3.2).",
        keys: &[
            Key {
                name: "retry_scale",
                doc: "",
                shown: D(|c| format!("{:?}", c.queue.retry_scale.0)),
            },
            Key {
                name: "mx_port",
                doc: "",
                shown: D(|c| c.queue.mx_port.to_string()),
            },
            Key {
                name: "timeout",
                doc: "",
                shown: D(|c| duration(c.queue.timeout)),
            },
        ],
    },
    Table {
        name: "limits",
        array: false,
        optional: false,
        doc: "",
        keys: &[
            Key {
                name: "max_message_size",
                doc: "The largest message accepted (SMTP SIZE, IMAP APPEND); at least 64K \
                      (RFC 5321).",
                shown: D(|c| size(c.limits.max_message_size)),
            },
            Key {
                name: "max_message_memory",
                doc: "Message data held in memory at once over all connections while it \
                      arrives (SMTP DATA, IMAP literals); what does not fit is refused with a \
                      temporary error. The default depends on the machine: a quarter of the \
                      RAM (64 MiB to 1 GiB), at least twice max_message_size. To fix it:",
                shown: E("\"256M\""),
            },
            Key {
                name: "max_connections",
                doc: "Simultaneous connections, in all and from one IP address.",
                shown: D(|c| c.limits.max_connections.to_string()),
            },
            Key {
                name: "max_connections_per_ip",
                doc: "",
                shown: D(|c| c.limits.max_connections_per_ip.to_string()),
            },
            Key {
                name: "max_recipients",
                doc: "Recipients per message (RFC 5321 4.5.3.1.8 asks for at least 100).",
                shown: D(|c| c.limits.max_recipients.to_string()),
            },
            Key {
                name: "max_line_length",
                doc: "The longest SMTP command line, in bytes; at least 1000 (RFC 5321 \
                      4.5.3.1.6).",
                shown: D(|c| c.limits.max_line_length.to_string()),
            },
            Key {
                name: "imap_max_line_length",
                doc: "The longest IMAP command line, in bytes, literals not counted; at least \
                      8192 (RFC 7162 4). 64K as Dovecot: an ID command with RFC 2971's 30 \
                      pairs of 1024-byte values is about 32K.",
                shown: D(|c| c.limits.imap_max_line_length.to_string()),
            },
            Key {
                name: "smtp_idle_timeout",
                doc: "Idle timeouts: SMTP 5 minutes (RFC 5321 4.5.3.2.7), IMAP 30 minutes \
                      (RFC 9051 5.4), POP3 10 minutes (RFC 1939 3), also the longest one \
                      command line may take to arrive; and the longest a whole SMTP session \
                      may last.",
                shown: D(|c| duration(c.limits.smtp_idle_timeout)),
            },
            Key {
                name: "imap_idle_timeout",
                doc: "",
                shown: D(|c| duration(c.limits.imap_idle_timeout)),
            },
            Key {
                name: "pop3_idle_timeout",
                doc: "",
                shown: D(|c| duration(c.limits.pop3_idle_timeout)),
            },
            Key {
                name: "session_timeout",
                doc: "",
                shown: D(|c| duration(c.limits.session_timeout)),
            },
        ],
    },
    Table {
        name: "quota",
        array: false,
        optional: false,
        doc: "The limits of every account that has none of its own (`letterbox user quota \
              ADDRESS --storage 2G --messages 100000` sets those). None by default. Mail over \
              quota is refused with 452 4.2.2 (SMTP) or NO [OVERQUOTA] (IMAP), never lost.",
        keys: &[
            Key {
                name: "storage",
                doc: "Bytes of mail per account, at least 1M:",
                shown: E("\"2G\""),
            },
            Key {
                name: "messages",
                doc: "Messages per account:",
                shown: E("100000"),
            },
        ],
    },
    Table {
        name: "backup",
        array: false,
        optional: false,
        doc: "Scheduled backups: once a day at `schedule` the daemon writes a complete backup \
              (accounts, mail, DKIM and TLS keys, queue, this file) into `dir` and keeps the \
              newest `keep` files. A failed backup, or none for over two days, is fault 6 on \
              the red LED. `letterbox backup FILE` takes one by hand, `letterbox backup \
              --verify FILE` checks one, `letterbox restore FILE` brings one back.",
        keys: &[
            Key {
                name: "dir",
                doc: "The directory to write to. None on a development host; on the appliance \
                      /mnt/lbbackup, where the image mounts a USB stick labelled LBBACKUP \
                      when one is plugged in:",
                shown: E("\"/mnt/lbbackup\""),
            },
            Key {
                name: "schedule",
                doc: "The local time of the daily backup, HH:MM (none by default: no \
                      scheduled backups):",
                shown: E("\"03:30\""),
            },
            Key {
                name: "keep",
                doc: "How many scheduled backups to keep (the newest), plus any full backup \
                      that a kept incremental one builds on.",
                shown: D(|c| c.backup.keep.to_string()),
            },
            Key {
                name: "full_every",
                doc: "Every full_every-th scheduled backup is full; those between are \
                      incremental (message bodies the newest full backup holds are named, \
                      not written again; verify and restore need that full backup beside \
                      them). 1 makes every backup full.",
                shown: D(|c| c.backup.full_every.to_string()),
            },
            Key {
                name: "passphrase_file",
                doc: "A file whose first line is the passphrase that encrypts the backups \
                      (age, scrypt). Without one the backups are NOT encrypted and anyone \
                      holding the stick can read the mail. Keep a copy of the passphrase \
                      off the box:",
                shown: E("\"/etc/letterbox/backup-passphrase\""),
            },
        ],
    },
    Table {
        name: "imap_compat",
        array: true,
        optional: true,
        doc: "[[imap_compat]]: capabilities to hide from an IMAP client that misbehaves with \
              them, matched on the name (and optionally a version prefix) it sends in ID \
              (RFC 2971). None by default: add one only for a real client that needs it, \
              and say why in reason.",
        keys: &[
            Key {
                name: "client",
                doc: "",
                shown: E("\"Some Mail App\""),
            },
            Key {
                name: "version",
                doc: "",
                shown: E("\"1.2\""),
            },
            Key {
                name: "hide",
                doc: "",
                shown: E("[\"COMPRESS=DEFLATE\"]"),
            },
            Key {
                name: "reason",
                doc: "",
                shown: E("\"what breaks, and where it was reported\""),
            },
        ],
    },
    Table {
        name: "acme",
        array: false,
        optional: true,
        doc: "[acme]: for a box with a public name, a certificate from an ACME CA (RFC 8555) \
              such as Let's Encrypt, for the host name, renewed at two thirds of its lifetime \
              (the household certificate is served until the first one arrives, and the old \
              one while a renewal fails). [tls] cert and key win when set.",
        keys: &[
            Key {
                name: "directory",
                doc: "The CA's directory URL (required).",
                shown: E("\"https://acme-v02.api.letsencrypt.org/directory\""),
            },
            Key {
                name: "email",
                doc: "A contact address for the CA's expiry notices (optional).",
                shown: E("\"postmaster@example.org\""),
            },
            Key {
                name: "challenge",
                doc: "\"http-01\": the CA fetches a token over HTTP on port 80 (the only one \
                      supported so far).",
                shown: E("\"http-01\""),
            },
            Key {
                name: "directory_ca",
                doc: "PEM roots to trust for the directory's HTTPS instead of the system's (a \
                      private ACME server).",
                shown: E("\"/etc/letterbox/acme-ca.pem\""),
            },
        ],
    },
    Table {
        name: "fetch",
        array: true,
        optional: true,
        doc: "[[fetch]]: a remote IMAPS account (Gmail with an app password, an ISP mailbox) \
              whose new mail is pulled into a local account, with IDLE when the remote offers \
              it and every interval otherwise. Pulled mail is verified (SPF, DKIM, DMARC) like \
              mail arriving on port 25. One table per remote account; none by default.",
        keys: &[
            Key {
                name: "account",
                doc: "The local account the mail goes to:",
                shown: E("\"alice@home.arpa\""),
            },
            Key {
                name: "host",
                doc: "The remote server (implicit TLS; its certificate is verified against \
                      the system trust store):",
                shown: E("\"imap.gmail.com\""),
            },
            Key {
                name: "port",
                doc: "",
                shown: E("993"),
            },
            Key {
                name: "username",
                doc: "",
                shown: E("\"alice.smith@gmail.com\""),
            },
            Key {
                name: "password_file",
                doc: "A file holding the remote password (for Gmail an app password); \
                      surrounding whitespace is not part of it:",
                shown: E("\"/etc/letterbox/gmail-alice\""),
            },
            Key {
                name: "folders",
                doc: "The remote folders pulled (default [\"INBOX\"]):",
                shown: E("[\"INBOX\"]"),
            },
            Key {
                name: "remote_action",
                doc: "What happens on the remote once a message is stored here: \"keep\" (the \
                      default), \"delete\", or \"move:FOLDER\":",
                shown: E("\"move:Archive\""),
            },
            Key {
                name: "interval",
                doc: "How often to look when the remote has no IDLE (default 5 minutes):",
                shown: E("\"5m\""),
            },
            Key {
                name: "ca_file",
                doc: "PEM CA certificates to trust for this remote instead of the system \
                      trust store (a private CA):",
                shown: E("\"/etc/letterbox/isp-ca.pem\""),
            },
        ],
    },
    Table {
        name: "watchdog",
        array: false,
        optional: false,
        doc: "",
        keys: &[
            Key {
                name: "device",
                doc: "The hardware watchdog, fed only while the mail services are healthy; \
                      \"\" disables it (the default on a development host).",
                shown: D(|c| {
                    q(&c.watchdog
                        .device
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default())
                }),
            },
            Key {
                name: "timeout_s",
                doc: "Seconds without feeding before the board resets: 1 to 60, but at most 15 \
                      on a Raspberry Pi (the bcm2835 watchdog cannot count longer).",
                shown: D(|c| c.watchdog.timeout_s.to_string()),
            },
        ],
    },
    Table {
        name: "log",
        array: false,
        optional: false,
        doc: "",
        keys: &[Key {
            name: "level",
            doc: "A tracing filter: \"error\", \"warn\", \"info\", \"debug\", \"trace\", or per \
                  module, such as \"info,letterbox::smtp=debug\". The RUST_LOG environment \
                  variable overrides it.",
            shown: D(|c| q(&c.log.level)),
        }],
    },
    Table {
        name: "spam",
        array: false,
        optional: false,
        doc: "Checks of port 25 before a message is accepted (never on submission, never for \
              `[auth] plaintext_networks` or `exempt_networks`). See the README's \"Spam\" \
              section for the DNS list zones and their terms of use; none is enabled by default. \
              Then the junk filter that learns from each person (README \"The junk filter that learns from each person\"): mail \
              from outside (port 25, [[fetch]]) is scored against the recipient's own \
              statistics; moving mail into Junk (or setting $Junk) trains spam, moving it out \
              (or $NotJunk), replying, and keeping it in the INBOX a week train ham. A junked \
              message goes to Junk with X-Spam-Score and X-Spam-Flag; nothing is deleted.",
        keys: &[
            Key {
                name: "dnsbl",
                doc: "DNS blocklists (RFC 5782): a listed client is refused with 554 5.7.1 and \
                      the zone's reason (action = \"refuse\") or only gets weight points \
                      (action = \"score\", the default; weight defaults to 5):",
                shown: E("[{ zone = \"zen.spamhaus.org\", weight = 10, action = \"refuse\" }]"),
            },
            Key {
                name: "dnswl",
                doc: "DNS allowlists: a listed client skips greylisting and gets weight points \
                      (default -5):",
                shown: E("[{ zone = \"list.dnswl.org\", weight = -5 }]"),
            },
            Key {
                name: "dns_timeout",
                doc: "How long the list and reverse-DNS lookups of a connection may take; a zone \
                      that has not answered counts as not listed (at most 60 s).",
                shown: D(|c| duration(c.spam.dns_timeout)),
            },
            Key {
                name: "greylist",
                doc: "Defer (451 4.7.1) an unknown (client /24 or /64, sender, recipient) triple.",
                shown: D(|c| c.spam.greylist.to_string()),
            },
            Key {
                name: "greylist_delay",
                doc: "How long an unknown triple is deferred.",
                shown: D(|c| duration(c.spam.greylist_delay)),
            },
            Key {
                name: "greylist_remember",
                doc: "How long a client network that passed greylisting is let through at once.",
                shown: D(|c| duration(c.spam.greylist_remember)),
            },
            Key {
                name: "greylist_max_entries",
                doc: "Greylist entries kept in the store (at least 100); the oldest go first.",
                shown: D(|c| c.spam.greylist_max_entries.to_string()),
            },
            Key {
                name: "early_talkers",
                doc: "Refuse (554 5.7.1) clients that talk before the greeting, or pipeline \
                      commands after HELO (RFC 2920 §3.1).",
                shown: D(|c| c.spam.early_talkers.to_string()),
            },
            Key {
                name: "greet_delay",
                doc: "How long the greeting waits to see whether the client talks first (at \
                      most 30 s).",
                shown: D(|c| duration(c.spam.greet_delay)),
            },
            Key {
                name: "iprev_fail_weight",
                doc: "Points when the client's reverse DNS fails (iprev, RFC 8601 §3).",
                shown: D(|c| c.spam.iprev_fail_weight.to_string()),
            },
            Key {
                name: "time_scale",
                doc: "Multiplies greylist_delay and greylist_remember: a factor in (0, 1], \
                      for tests.",
                shown: D(|c| format!("{:?}", c.spam.time_scale.0)),
            },
            Key {
                name: "exempt_networks",
                doc: "Clients never checked (the LAN), besides [auth] plaintext_networks.",
                shown: D(|c| list(c.spam.exempt_networks.iter().map(|n| n.to_string()))),
            },
            Key {
                name: "learn",
                doc: "Score incoming mail and learn from what people do:",
                shown: D(|c| c.spam_filter.enabled.to_string()),
            },
            Key {
                name: "junk_threshold",
                doc: "Spam probability (0.5 to 1) at which a message goes to Junk:",
                shown: D(|c| c.spam_filter.junk_threshold.to_string()),
            },
            Key {
                name: "reject_threshold",
                doc: "Probability at which port-25 mail is refused with 550 5.7.1 at the end \
                      of DATA (off unless set; at least junk_threshold):",
                shown: E("0.9999"),
            },
            Key {
                name: "min_trained",
                doc: "Spam and ham messages each an account needs trained before anything \
                      is junked:",
                shown: D(|c| c.spam_filter.min_trained.to_string()),
            },
        ],
    },
];
const HOST_HEADER: &str = "\
letterbox.example.toml: every key of letterbox.toml, at its default on a development host.
Generated by `letterbox check-config --example` from src/config/example.rs; do not edit.

Every key is optional. A line \"#key = value\" shows a key at its default: remove the \"#\" and \
change the value to set it. Lines starting with \"# \" are explanations or examples. Use it \
with `letterbox serve --config FILE`; `letterbox check-config --config FILE` names the line \
and key of any mistake.

These are the HOST defaults ([board] name = \"sim\": a simulated board, loopback ports 2525, \
2587, ..., ./letterbox-data, no watchdog). With any real board the appliance defaults apply \
instead: every interface, the standard ports, /var/lib/letterbox and /dev/watchdog \
(image/letterbox.toml shows them).

Sizes: bytes, or \"512K\", \"50M\", \"1G\" (binary: 1K = 1024). Durations: seconds, or \"30s\", \
\"5m\", \"2h\".";

const APPLIANCE_HEADER: &str = "\
letterbox.toml: the configuration of the Letterbox mail appliance.
Generated by `letterbox check-config --example --appliance` from src/config/example.rs.

Every key is optional. A line \"#key = value\" shows a key at its default: remove the \"#\" and \
change the value to set it. Lines starting with \"# \" are explanations or examples. After \
editing, `letterbox check-config` names the line and key of any mistake.

Because [board] name below is a real board (\"auto\": the Raspberry Pi this card is plugged \
into), the APPLIANCE defaults apply: services listen on all interfaces on their standard ports, \
data lives in /var/lib/letterbox, and the hardware watchdog is used. (With name = \"sim\", the \
default on a development host, they would be loopback ports 2525, 2587, ..., ./letterbox-data \
and no watchdog.)

Sizes: bytes, or \"512K\", \"50M\", \"1G\" (binary: 1K = 1024). Durations: seconds, or \"30s\", \
\"5m\", \"2h\".";

/// Writes `text` as `# ` comment lines of at most 92 columns; a `\n` in `text` starts a new
/// paragraph line.
fn comment(out: &mut String, text: &str) {
    for para in text.split('\n') {
        let mut line = String::from("#");
        for word in para.split_whitespace() {
            if line.len() > 1 && line.len() + 1 + word.len() > 92 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// The documented configuration file of `flavor`.
pub fn example(flavor: Flavor) -> String {
    let (cfg, header) = match flavor {
        Flavor::Host => (Config::base(SIM_BOARD.to_owned()), HOST_HEADER),
        Flavor::Appliance => (Config::base(AUTO_BOARD.to_owned()), APPLIANCE_HEADER),
    };
    let mut out = String::new();
    comment(&mut out, header);
    for t in TABLES {
        out.push('\n');
        // The prose of a commented table comes before its header, else after it.
        let commented = t.array || t.optional;
        if commented && !t.doc.is_empty() {
            comment(&mut out, t.doc);
        }
        let _ = match (t.array, t.optional) {
            (true, _) => writeln!(out, "# [[{}]]", t.name),
            (false, true) => writeln!(out, "# [{}]", t.name),
            (false, false) => writeln!(out, "[{}]", t.name),
        };
        if !commented && !t.doc.is_empty() {
            comment(&mut out, t.doc);
        }
        for k in t.keys {
            if !k.doc.is_empty() {
                comment(&mut out, k.doc);
            }
            let board = (t.name, k.name) == ("board", "name");
            match &k.shown {
                // The image sets its board; everything else stays at its default.
                D(_) if board && flavor == Flavor::Appliance => {
                    let _ = writeln!(out, "{} = {}", k.name, q(AUTO_BOARD));
                }
                D(value) => {
                    let _ = writeln!(out, "#{} = {}", k.name, value(&cfg));
                }
                E(example) => {
                    let _ = writeln!(out, "# {} = {example}", k.name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::detect_board;
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    /// Captures the field names a `Deserialize` implementation asks for, without input.
    struct Fields(std::cell::RefCell<Vec<&'static str>>);

    impl<'de> Deserializer<'de> for &Fields {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only structs"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.borrow_mut().extend_from_slice(fields);
            Err(de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    fn fields<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
        let f = Fields(Default::default());
        let _ = T::deserialize(&f);
        f.0.into_inner()
    }

    /// Every table and key the parser accepts, from the parser's own types.
    fn accepted() -> Vec<(&'static str, Vec<&'static str>)> {
        use crate::config::*;
        let tables = vec![
            ("server", fields::<RawServer>()),
            ("listen", fields::<RawListen>()),
            ("tls", fields::<RawTls>()),
            ("auth", fields::<RawAuth>()),
            ("dns", fields::<RawDns>()),
            ("relay", fields::<RawRelay>()),
            ("queue", fields::<RawQueue>()),
            ("limits", fields::<RawLimits>()),
            ("quota", fields::<crate::config::quota::RawQuota>()),
            ("backup", fields::<crate::config::backup::RawBackup>()),
            ("imap_compat", fields::<crate::config::compat::RawCompat>()),
            ("fetch", fields::<crate::config::fetch::RawFetch>()),
            ("acme", fields::<crate::config::acme::RawAcme>()),
            ("board", fields::<RawBoard>()),
            ("watchdog", fields::<RawWatchdog>()),
            ("log", fields::<RawLog>()),
            ("user", fields::<RawUser>()),
            ("ssh", fields::<RawSsh>()),
            ("spam", fields::<crate::config::spam::RawSpam>()),
        ];
        // A table added to RawConfig must be added above too, or this fails.
        let mut top = fields::<RawConfig>();
        let mut listed: Vec<_> = tables.iter().map(|(t, _)| *t).collect();
        top.sort_unstable();
        listed.sort_unstable();
        assert_eq!(top, listed, "the tables of RawConfig");
        tables
    }

    #[test]
    fn every_accepted_key_is_documented_and_nothing_else() {
        let mut documented: Vec<(&str, Vec<&str>)> = TABLES
            .iter()
            .map(|t| (t.name, t.keys.iter().map(|k| k.name).collect()))
            .collect();
        let mut accepted = accepted();
        for list in [&mut documented, &mut accepted] {
            list.sort_unstable();
            for (_, keys) in list.iter_mut() {
                keys.sort_unstable();
            }
        }
        assert_eq!(documented, accepted);
    }

    /// Uncomments the "#key = default" lines (prose and examples are "# ...").
    fn uncomment_defaults(text: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if !rest.starts_with([' ', '#']) && !rest.is_empty() => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Uncomments every key line, examples and commented headers included.
    fn uncomment_all(text: &str) -> String {
        let key = |s: &str| {
            s.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b == b'_' || b.is_ascii_lowercase())
            })
        };
        text.lines()
            .map(|line| {
                let rest = line.strip_prefix("# ").or_else(|| line.strip_prefix('#'));
                match rest {
                    Some(r) if key(r) || (r.starts_with('[') && r.ends_with(']')) => r,
                    _ => line,
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn parse(text: &str) -> Config {
        Config::parse(text, "example").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn the_host_example_states_the_host_defaults() {
        let text = example(Flavor::Host);
        assert_eq!(parse(&text), Config::defaults());
        let uncommented = uncomment_defaults(&text);
        assert!(uncommented.contains("\nmax_message_size = \"50M\""));
        assert!(uncommented.contains("\nimaps = \"127.0.0.1:2993\""));
        assert_eq!(parse(&uncommented), Config::defaults());
        // Every example is a valid value too.
        let all = parse(&uncomment_all(&text));
        assert!(all.relay.is_some() && all.tls.cert.is_some() && all.users.len() == 1);
        assert_eq!(all.imap_compat.len(), 1);
        assert_eq!(all.limits.max_message_memory, Some(256 << 20));
        assert_eq!(all.quota.storage, Some(2 << 30));
    }

    #[test]
    fn the_appliance_example_states_the_appliance_defaults() {
        let text = example(Flavor::Appliance);
        let appliance = parse(&format!("[board]\nname = {:?}\n", detect_board()));
        assert_eq!(parse(&text), appliance);
        let uncommented = uncomment_defaults(&text);
        assert!(uncommented.contains("\nsmtp = \"0.0.0.0:25\""));
        assert_eq!(parse(&uncommented), appliance);
        parse(&uncomment_all(&text));
    }

    /// The committed files are this module's output (regenerate them with
    /// `cargo run -- check-config --example > letterbox.example.toml` and
    /// `cargo run -- check-config --example --appliance > image/letterbox.toml`).
    #[test]
    fn the_committed_files_are_generated() {
        for (committed, flavor, path, flag) in [
            (
                include_str!("../../letterbox.example.toml"),
                Flavor::Host,
                "letterbox.example.toml",
                "",
            ),
            (
                include_str!("../../image/letterbox.toml"),
                Flavor::Appliance,
                "image/letterbox.toml",
                " --appliance",
            ),
        ] {
            let want = example(flavor);
            if committed != want {
                let line = committed
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(committed.lines().count().min(want.lines().count()));
                panic!(
                    "{path} is stale from line {}: cargo run -- check-config --example{flag} > {path}\n\
                     committed: {:?}\ngenerated: {:?}",
                    line + 1,
                    committed.lines().nth(line),
                    want.lines().nth(line)
                );
            }
        }
    }

    #[test]
    fn values_render_in_the_file_syntax() {
        assert_eq!(size(50 << 20), "\"50M\"");
        assert_eq!(size(1000), "1000");
        assert_eq!(duration(Duration::from_secs(7200)), "\"2h\"");
        assert_eq!(duration(Duration::from_secs(90)), "\"90s\"");
    }
}

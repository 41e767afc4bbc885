//! Letterbox's configuration: the typed form of `letterbox.toml` (SPEC section 3).
//!
//! This module owns the configuration file format, every default value, and every check on a
//! value. The file is parsed once, at start-up or by `letterbox check-config`, into a [`Config`]
//! whose fields are already validated and typed (socket addresses, CIDRs, byte counts,
//! [`Duration`]s), so the rest of the daemon never re-parses or re-checks them.
//!
//! # Defaults depend on the board
//! Every key is optional. Which defaults apply depends on `[board] name`:
//!
//! | | `sim` (the default: a development host) | any other board (`rpi4`, ...): the appliance |
//! |---|---|---|
//! | `[listen]` smtp, submission, submissions, imap, imaps, pop3, pop3s | `127.0.0.1:` 2525, 2587, 2465, 2143, 2993, 2110, 2995 | `0.0.0.0:` 25, 587, 465, 143, 993, 110, 995 |
//! | `[server] data_dir` | `./letterbox-data` | `/var/lib/letterbox` |
//! | `[watchdog] device` | none | `/dev/watchdog` |
//!
//! so that `cargo run -- serve` with no file at all is a harmless loopback server, while the
//! image only has to say `[board] name = "auto"` (resolved from the device tree: a Pi's own
//! board file, or [`NONE_BOARD`] elsewhere). Keys written in the file always win over
//! either set of defaults. Everything else has one default: domains `["home.arpa"]`
//! (RFC 8375), host name `letterbox.` + the primary domain, loopback-only plaintext logins,
//! the system resolver, direct delivery (no relay), the limits documented on
//! [`LimitsConfig`], and log level `info`.
//!
//! `image/letterbox.toml` documents every key at its appliance default; a test keeps it in
//! step with this module.
//!
//! # Value syntax
//! - Listen addresses are `"ip:port"` (`"[::]:993"` for IPv6); `""` disables the service.
//! - Sizes are integers (bytes) or strings with a binary multiple: `"512K"`, `"50M"`,
//!   `"50MiB"`, `"1G"` (`K`, `KB` and `KiB` all mean 1024).
//! - Durations are integers (seconds) or strings `"30s"`, `"5m"`, `"2h"`.
//! - Relative paths are relative to the daemon's working directory.
//!
//! # Errors
//! A [`ConfigError`] names the file, the line and the dotted key at fault, on one line:
//! `letterbox.toml:12: limits.max_connections: invalid type: string "lots", expected u32`.
//! Unknown keys and tables are errors (a misspelt key would otherwise be silently ignored).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::de::{DeTable, DeValue};

/// The `[board] name` of the simulated board; it selects the host defaults.
pub const SIM_BOARD: &str = "sim";

/// The `[board] name` that picks the board from the device tree ([`detect_board`]).
pub const AUTO_BOARD: &str = "auto";

/// The board `auto` resolves to on a machine that is not a known Raspberry Pi (QEMU's
/// `virt`, say): the appliance defaults, with the LEDs kept in memory only.
pub const NONE_BOARD: &str = "none";

/// Where the running kernel names the machine (`Raspberry Pi 4 Model B Rev 1.5`).
const DEVICE_TREE_MODEL: &str = "/proc/device-tree/model";

/// The board file for the machine whose device-tree model is `model`, or [`NONE_BOARD`].
pub fn board_for_model(model: &str) -> &'static str {
    let model = model.trim_end_matches(['\0', '\n']);
    if !model.starts_with("Raspberry Pi") {
        return NONE_BOARD;
    }
    if model.contains("Zero 2") {
        "rpi-zero2w"
    } else if model.starts_with("Raspberry Pi 5") {
        "rpi5"
    } else if model.starts_with("Raspberry Pi 4")
        || model.starts_with("Raspberry Pi Compute Module 4")
    {
        "rpi4"
    } else if model.starts_with("Raspberry Pi 3") {
        "rpi3"
    } else {
        NONE_BOARD
    }
}

/// Resolves `[board] name = "auto"`: the board named by the device tree of the running
/// kernel (`LETTERBOX_DEVICE_TREE_MODEL` names another file, for tests), else [`NONE_BOARD`].
pub fn detect_board() -> &'static str {
    let path = std::env::var_os("LETTERBOX_DEVICE_TREE_MODEL")
        .map_or_else(|| PathBuf::from(DEVICE_TREE_MODEL), PathBuf::from);
    std::fs::read(&path).map_or(NONE_BOARD, |m| {
        board_for_model(&String::from_utf8_lossy(&m))
    })
}

/// The default mail domain, reserved for home networks by RFC 8375.
pub const DEFAULT_DOMAIN: &str = "home.arpa";

/// The largest `[watchdog] timeout_s` accepted. The bcm2835 watchdog of every Raspberry Pi
/// supports at most [`BCM2835_MAX_WATCHDOG_TIMEOUT_S`]; larger values are only for other boards.
pub const MAX_WATCHDOG_TIMEOUT_S: u32 = 60;

/// The longest timeout the bcm2835 watchdog (Raspberry Pi) can be armed with, in seconds.
pub const BCM2835_MAX_WATCHDOG_TIMEOUT_S: u32 = 15;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The services of `[listen]`, in file order, with their host and appliance default ports.
const SERVICES: [(&str, u16, u16); 7] = [
    ("smtp", 2525, 25),
    ("submission", 2587, 587),
    ("submissions", 2465, 465),
    ("imap", 2143, 143),
    ("imaps", 2993, 993),
    ("pop3", 2110, 110),
    ("pop3s", 2995, 995),
];

// ------------------------------------------------------------------------------------------
// The typed configuration
// ------------------------------------------------------------------------------------------

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[server]`: names and storage.
    pub server: ServerConfig,
    /// `[listen]`: the address of each service.
    pub listen: ListenConfig,
    /// `[tls]`: the certificate, or none for a generated self-signed one.
    pub tls: TlsConfig,
    /// `[auth]`: where credentials may travel without TLS.
    pub auth: AuthConfig,
    /// `[dns]`: the resolvers used for MX, SPF, DKIM and DMARC lookups.
    pub dns: DnsConfig,
    /// `[relay]`: the smarthost for all outbound mail; `None` = direct delivery to the MX.
    pub relay: Option<RelayConfig>,
    /// `[queue]`: outbound delivery timing.
    pub queue: QueueConfig,
    /// `[limits]`: sizes, connection counts and timeouts.
    pub limits: LimitsConfig,
    /// `[board]`: which board (LEDs, button) to drive.
    pub board: BoardConfig,
    /// `[watchdog]`: the hardware watchdog.
    pub watchdog: WatchdogConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[[user]]`: accounts to create or update at start (first-boot provisioning).
    pub users: Vec<UserEntry>,
    /// `[ssh]`: remote shell access on the image (read by the image, not by the daemon).
    pub ssh: SshConfig,
}

/// One `[[user]]` table: an account the daemon creates (or whose password it sets) at start.
/// The plaintext password is erased from the file once applied ([`erase_passwords`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The account's address, lower-cased, in one of `[server] domains`.
    pub address: String,
    /// The password to set (at least 8 characters); `None` leaves an existing account's
    /// password alone (a new account needs one).
    pub password: Option<Password>,
    /// Further addresses delivered to this account (`alias@domain` or `@domain`).
    pub aliases: Vec<String>,
}

/// A plaintext password from the file; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// `[ssh]`: whether the image starts its SSH server, and the keys it lets in. Off by default;
/// passwords are never accepted over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshConfig {
    /// Start the SSH server.
    pub enabled: bool,
    /// `authorized_keys` lines for root.
    pub authorized_keys: Vec<String>,
}

/// `[server]`: names and storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The host name used in greetings, `Received:` headers and the certificate.
    /// Default: `letterbox.` + the primary domain.
    pub hostname: String,
    /// The mail domains served, lower-cased, never empty, without duplicates; the first one is
    /// the primary domain. Default: `["home.arpa"]` (RFC 8375).
    pub domains: Vec<String>,
    /// Where the database, keys and generated certificate live.
    /// Default: `./letterbox-data` on the host, `/var/lib/letterbox` on the appliance.
    pub data_dir: PathBuf,
}

/// `[listen]`: the address of each service; `None` means the service is disabled
/// (written `""` in the file). No two enabled services share an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// SMTP for inbound internet mail (MX). Default `0.0.0.0:25` / host `127.0.0.1:2525`.
    pub smtp: Option<SocketAddr>,
    /// Message submission with STARTTLS (RFC 6409). Default `0.0.0.0:587` / host `127.0.0.1:2587`.
    pub submission: Option<SocketAddr>,
    /// Message submission over implicit TLS (RFC 8314). Default `0.0.0.0:465` / host `127.0.0.1:2465`.
    pub submissions: Option<SocketAddr>,
    /// IMAP with STARTTLS. Default `0.0.0.0:143` / host `127.0.0.1:2143`.
    pub imap: Option<SocketAddr>,
    /// IMAP over implicit TLS. Default `0.0.0.0:993` / host `127.0.0.1:2993`.
    pub imaps: Option<SocketAddr>,
    /// POP3 with STLS. Default `0.0.0.0:110` / host `127.0.0.1:2110`.
    pub pop3: Option<SocketAddr>,
    /// POP3 over implicit TLS. Default `0.0.0.0:995` / host `127.0.0.1:2995`.
    pub pop3s: Option<SocketAddr>,
}

/// `[tls]`: PEM files for the server certificate. Both are set or neither is; with neither, a
/// self-signed certificate is generated once into `data_dir` and reused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// The certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// The private key, PEM.
    pub key: Option<PathBuf>,
}

/// `[auth]`: credential policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Networks from which LOGIN, USER/PASS and AUTH PLAIN are accepted without TLS.
    /// Default: loopback only (`127.0.0.0/8`, `::1/128`). Host bits are cleared.
    pub plaintext_networks: Vec<IpNet>,
}

/// `[dns]`: resolvers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsConfig {
    /// Name servers to query instead of the system resolver (written `"ip:port"`, or `"ip"` for
    /// port 53). Empty (the default) means the system resolver.
    pub nameservers: Vec<SocketAddr>,
}

/// `[relay]`: a smarthost through which all outbound mail is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The smarthost's host name or IP address (required when `[relay]` is present).
    pub host: String,
    /// The smarthost's port. Default: [`RelaySecurity::default_port`].
    pub port: u16,
    /// The user name for AUTH; set together with `password_file`.
    pub username: Option<String>,
    /// A file holding the AUTH password; surrounding whitespace (such as a final newline) is not
    /// part of the password.
    pub password_file: Option<PathBuf>,
    /// How the connection to the smarthost is protected. Default: STARTTLS.
    pub security: RelaySecurity,
}

/// `[relay] security`: how the connection to the smarthost is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelaySecurity {
    /// `"starttls"`: plain connection upgraded with STARTTLS, which is required (the delivery
    /// fails rather than continue in clear). Default port 587 (RFC 6409 section 3.1).
    #[default]
    StartTls,
    /// `"tls"`: implicit TLS from the first byte. Default port 465 (RFC 8314 section 3.3).
    Tls,
    /// `"none"`: no TLS at all. Default port 25. Not allowed together with credentials.
    None,
}

impl RelaySecurity {
    /// The port used when `[relay] port` is absent: 587, 465 or 25.
    pub fn default_port(self) -> u16 {
        match self {
            RelaySecurity::StartTls => 587,
            RelaySecurity::Tls => 465,
            RelaySecurity::None => 25,
        }
    }
}

/// `[queue]`: outbound delivery. The defaults are what a mail server should do; the
/// knobs exist for tests and unusual networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Multiplies every duration of the retry schedule (5 min, 15 min, … up to 5 days, and
    /// the 4-hour delay notice): a number in (0, 1]. Default 1. Tests use 0.001 so that a
    /// retry comes after a second instead of five minutes.
    pub retry_scale: RetryScale,
    /// The TCP port of direct MX delivery. Default 25 (RFC 5321 §4.5.4); tests point it at
    /// unprivileged receivers.
    pub mx_port: u16,
    /// How long the SMTP client waits to connect and for each reply of the remote server.
    /// Default 5 minutes (RFC 5321 §4.5.3.2 gives 2 to 10 minutes per command; the end of
    /// DATA gets twice this).
    pub timeout: Duration,
}

/// `[queue] retry_scale`: a factor in (0, 1].
#[derive(Debug, Clone, Copy)]
pub struct RetryScale(pub f64);

impl PartialEq for RetryScale {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for RetryScale {}

/// `[limits]`: resource limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// The largest message accepted, in bytes (SMTP SIZE, RFC 1870; IMAP APPEND). Default
    /// 50 MiB; at least 64 KiB, the minimum RFC 5321 section 4.5.3.1.7 requires.
    pub max_message_size: u64,
    /// Message bytes held in memory at once over all connections while they arrive
    /// (SMTP DATA/BDAT, IMAP literals; see `budget.rs`); a message that does not fit is
    /// refused with a temporary error. `None` (the default): a quarter of the RAM, 64 MiB
    /// to 1 GiB, and at least twice `max_message_size` ([`LimitsConfig::message_memory`]).
    pub max_message_memory: Option<u64>,
    /// Concurrent connections over all services. Default 200.
    pub max_connections: u32,
    /// Concurrent connections from one IP address. Default 20.
    pub max_connections_per_ip: u32,
    /// Recipients per SMTP transaction. Default 100, the minimum RFC 5321 section 4.5.3.1.8
    /// says a server must accept (lower values are allowed, for submission-only setups).
    pub max_recipients: u32,
    /// The longest command line accepted by SMTP, IMAP and POP3, in octets, CRLF included
    /// (literals and message data are bounded by `max_message_size` instead). Default 8192, as
    /// RFC 7162 section 4 recommends for IMAP; at least 1000 (RFC 5321 section 4.5.3.1.6).
    pub max_line_length: usize,
    /// SMTP server idle timeout, waiting for the next command or data block. Default 5 minutes
    /// (RFC 5321 section 4.5.3.2.7).
    pub smtp_idle_timeout: Duration,
    /// IMAP inactivity autologout timer. Default 30 minutes, the minimum in RFC 9051 section 5.4.
    pub imap_idle_timeout: Duration,
    /// POP3 inactivity autologout timer. Default 10 minutes, the minimum in RFC 1939 section 3.
    pub pop3_idle_timeout: Duration,
    /// The longest a whole SMTP session may last, however active. Default 30 minutes.
    pub session_timeout: Duration,
}

impl LimitsConfig {
    /// The budget for message bytes in memory: `max_message_memory`, or by default a
    /// quarter of the RAM (`/proc/meminfo`; 1 GiB assumed without it) between 64 MiB and
    /// 1 GiB, and at least twice `max_message_size`.
    pub fn message_memory(&self) -> u64 {
        if let Some(m) = self.max_message_memory {
            return m;
        }
        let ram = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map_or(GIB, |kib| kib.saturating_mul(KIB));
        (ram / 4)
            .clamp(64 * MIB, GIB)
            .max(self.max_message_size.saturating_mul(2))
    }
}

/// `[board]`: which board description to drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardConfig {
    /// `"sim"` (the default: simulated LEDs and button, host defaults) or the name of a file in
    /// `board/` without `.toml` (`"rpi4"`, ...: the appliance defaults apply). `"auto"` in the
    /// file is resolved at load time ([`detect_board`]), so this is never `"auto"`; it may be
    /// [`NONE_BOARD`].
    pub name: String,
}

/// `[watchdog]`: the hardware watchdog, fed only while the health checks pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// The watchdog device; `None` (written `""`) disables it. Default `/dev/watchdog` on the
    /// appliance, none on the host.
    pub device: Option<PathBuf>,
    /// The timeout the watchdog is armed with, in seconds: 1 to [`MAX_WATCHDOG_TIMEOUT_S`].
    /// Default 15, the most the Raspberry Pi's bcm2835 watchdog supports (it clamps larger
    /// values to 15 s), so use at most [`BCM2835_MAX_WATCHDOG_TIMEOUT_S`] on a Pi.
    pub timeout_s: u32,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing_subscriber::EnvFilter` directive string, e.g. `"info"` (the default) or
    /// `"info,letterbox::smtp=debug"`. `RUST_LOG`, when set, is expected to take precedence.
    pub level: String,
}

/// A configuration error, naming the file, the line and the key at fault when known.
///
/// Displayed on one line as `{origin}:{line}: {key}: {message}`, leaving out the parts that
/// are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name (or other origin) given to [`Config::parse`] or [`Config::load`].
    pub origin: String,
    /// The 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// The dotted key path at fault (`limits.max_connections`), when known.
    pub key: Option<String>,
    /// What is wrong, on one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The configuration with every key at its default (host defaults): the same as parsing an
    /// empty file.
    pub fn defaults() -> Config {
        Config::base(SIM_BOARD.to_owned())
    }

    /// The configuration the appliance runs with when its file has a mistake
    /// (`serve --survive-bad-config`): every key at its default for board `auto`.
    pub fn appliance_fallback() -> Config {
        Config::base(detect_board().to_owned())
    }

    /// Parses and validates the TOML `text`; `origin` (usually the file name) prefixes errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let doc = match DeTable::parse(text) {
            Ok(doc) => doc,
            Err(e) => return Err(syntax_error(text, origin, &e)),
        };
        let index = KeyIndex::new(text, doc.get_ref());
        let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc))
            .map_err(|e| index.toml_error(origin, &e))?;
        Builder {
            origin,
            index: &index,
        }
        .build(raw)
    }

    /// Reads and parses the file at `path`; errors name the path.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &origin),
            Err(e) => Err(ConfigError {
                origin,
                line: None,
                key: None,
                message: one_line(&format!("cannot read: {e}")),
            }),
        }
    }

    /// The primary mail domain: the first of `[server] domains`.
    pub fn primary_domain(&self) -> &str {
        self.server
            .domains
            .first()
            .map_or(DEFAULT_DOMAIN, String::as_str)
    }

    /// Whether credentials may be accepted without TLS from `ip`, i.e. it lies in
    /// `[auth] plaintext_networks`. IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`, as seen on a
    /// dual-stack socket) are treated as the IPv4 address they carry.
    pub fn is_plaintext_allowed(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.auth
            .plaintext_networks
            .iter()
            .any(|net| net.contains(&canonical) || net.contains(&ip))
    }

    /// Whether `domain` is one of `[server] domains`, ignoring ASCII case and one trailing dot.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        self.server
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether this is the appliance (a real board), not the simulated board on a host.
    pub fn is_appliance(&self) -> bool {
        self.board.name != SIM_BOARD
    }

    /// The defaults for the board `board`: host defaults for `sim`, appliance defaults otherwise.
    fn base(board: String) -> Config {
        let appliance = board != SIM_BOARD;
        let domains = vec![DEFAULT_DOMAIN.to_owned()];
        Config {
            server: ServerConfig {
                hostname: format!("letterbox.{DEFAULT_DOMAIN}"),
                domains,
                data_dir: PathBuf::from(if appliance {
                    "/var/lib/letterbox"
                } else {
                    "./letterbox-data"
                }),
            },
            listen: ListenConfig::defaults(appliance),
            tls: TlsConfig::default(),
            auth: AuthConfig {
                plaintext_networks: vec![
                    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                    IpNet::new_assert(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128),
                ],
            },
            dns: DnsConfig::default(),
            relay: None,
            queue: QueueConfig {
                retry_scale: RetryScale(1.0),
                mx_port: 25,
                // RFC 5321 section 4.5.3.2: 5 minutes for most replies.
                timeout: Duration::from_secs(5 * 60),
            },
            limits: LimitsConfig {
                max_message_size: 50 * MIB,
                max_connections: 200,
                max_connections_per_ip: 20,
                // RFC 5321 section 4.5.3.1.8: at least 100 recipients.
                max_recipients: 100,
                max_message_memory: None,
                // RFC 7162 section 4: IMAP servers should accept command lines of 8192 octets.
                max_line_length: 8192,
                // RFC 5321 section 4.5.3.2.7: server timeout of 5 minutes.
                smtp_idle_timeout: Duration::from_secs(5 * 60),
                // RFC 9051 section 5.4: inactivity autologout timer of at least 30 minutes.
                imap_idle_timeout: Duration::from_secs(30 * 60),
                // RFC 1939 section 3: inactivity autologout timer of at least 10 minutes.
                pop3_idle_timeout: Duration::from_secs(10 * 60),
                session_timeout: Duration::from_secs(30 * 60),
            },
            watchdog: WatchdogConfig {
                device: appliance.then(|| PathBuf::from("/dev/watchdog")),
                timeout_s: BCM2835_MAX_WATCHDOG_TIMEOUT_S,
            },
            board: BoardConfig { name: board },
            log: LogConfig {
                level: "info".to_owned(),
            },
            users: Vec::new(),
            ssh: SshConfig::default(),
        }
    }
}

impl ListenConfig {
    /// The default addresses: appliance (`0.0.0.0`, standard ports) or host (loopback, 2xxx).
    fn defaults(appliance: bool) -> ListenConfig {
        let addr = |i: usize| {
            let (_, host, appl) = SERVICES[i];
            Some(if appliance {
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, appl))
            } else {
                SocketAddr::from((Ipv4Addr::LOCALHOST, host))
            })
        };
        ListenConfig {
            smtp: addr(0),
            submission: addr(1),
            submissions: addr(2),
            imap: addr(3),
            imaps: addr(4),
            pop3: addr(5),
            pop3s: addr(6),
        }
    }

    /// Every service with its address (`None` = disabled), in the order of the `[listen]` keys:
    /// `smtp`, `submission`, `submissions`, `imap`, `imaps`, `pop3`, `pop3s`.
    pub fn services(&self) -> [(&'static str, Option<SocketAddr>); 7] {
        [
            (SERVICES[0].0, self.smtp),
            (SERVICES[1].0, self.submission),
            (SERVICES[2].0, self.submissions),
            (SERVICES[3].0, self.imap),
            (SERVICES[4].0, self.imaps),
            (SERVICES[5].0, self.pop3),
            (SERVICES[6].0, self.pop3s),
        ]
    }

    fn slot(&mut self, i: usize) -> &mut Option<SocketAddr> {
        match i {
            0 => &mut self.smtp,
            1 => &mut self.submission,
            2 => &mut self.submissions,
            3 => &mut self.imap,
            4 => &mut self.imaps,
            5 => &mut self.pop3,
            _ => &mut self.pop3s,
        }
    }
}

// ------------------------------------------------------------------------------------------
// The raw file: every key optional, unknown keys rejected
// ------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a TOML document")]
struct RawConfig {
    server: RawServer,
    listen: RawListen,
    tls: RawTls,
    auth: RawAuth,
    dns: RawDns,
    relay: Option<RawRelay>,
    queue: RawQueue,
    limits: RawLimits,
    board: RawBoard,
    watchdog: RawWatchdog,
    log: RawLog,
    user: Vec<RawUser>,
    ssh: RawSsh,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawUser {
    address: String,
    password: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawSsh {
    enabled: Option<bool>,
    authorized_keys: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawServer {
    hostname: Option<HostName>,
    domains: Option<Vec<HostName>>,
    data_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawListen {
    smtp: Option<ListenAddr>,
    submission: Option<ListenAddr>,
    submissions: Option<ListenAddr>,
    imap: Option<ListenAddr>,
    imaps: Option<ListenAddr>,
    pop3: Option<ListenAddr>,
    pop3s: Option<ListenAddr>,
}

impl RawListen {
    fn take(&mut self, i: usize) -> Option<ListenAddr> {
        match i {
            0 => self.smtp.take(),
            1 => self.submission.take(),
            2 => self.submissions.take(),
            3 => self.imap.take(),
            4 => self.imaps.take(),
            5 => self.pop3.take(),
            _ => self.pop3s.take(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawAuth {
    plaintext_networks: Option<Vec<Cidr>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawDns {
    nameservers: Option<Vec<Nameserver>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawRelay {
    host: Option<String>,
    port: Option<u16>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    security: Option<RelaySecurity>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawQueue {
    retry_scale: Option<f64>,
    mx_port: Option<u16>,
    timeout: Option<Seconds>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawLimits {
    max_message_size: Option<Size>,
    max_connections: Option<u32>,
    max_connections_per_ip: Option<u32>,
    max_recipients: Option<u32>,
    max_message_memory: Option<Size>,
    max_line_length: Option<usize>,
    smtp_idle_timeout: Option<Seconds>,
    imap_idle_timeout: Option<Seconds>,
    pop3_idle_timeout: Option<Seconds>,
    session_timeout: Option<Seconds>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawBoard {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawWatchdog {
    device: Option<PathBuf>,
    timeout_s: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
struct RawLog {
    level: Option<String>,
}

// Value newtypes: each checks its value while deserializing, so toml attaches the value's span
// to the error and the error names the right line and key.

/// Deserializes a string and converts it with `parse`, which returns a one-line message. The
/// check runs inside the visitor so that toml attaches the value's own span to the error (the
/// element's, in an array).
fn from_str_with<'de, D, T>(d: D, parse: fn(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T>(fn(&str) -> Result<T, String>);
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.0)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V(parse))
}

/// A host or domain name, lower-cased.
struct HostName(String);

impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, |s| {
            if s.is_empty() {
                return Err("must not be empty".to_owned());
            }
            check_domain(s)
                .map(|()| HostName(s.to_ascii_lowercase()))
                .map_err(|why| format!("invalid domain name {s:?}: {why}"))
        })
    }
}

/// A `[listen]` address; `None` for `""`.
struct ListenAddr(Option<SocketAddr>);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, |s| {
            if s.is_empty() {
                return Ok(ListenAddr(None));
            }
            s.parse::<SocketAddr>()
                .map(|a| ListenAddr(Some(a)))
                .map_err(|_| {
                    format!(
                        "invalid listen address {s:?}: expected \"ip:port\" such as \
                         \"0.0.0.0:25\" or \"[::]:25\", or \"\" to disable the service"
                    )
                })
        })
    }
}

/// A network in CIDR notation; a bare address means that one host.
struct Cidr(IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, |s| {
            if let Ok(net) = s.parse::<IpNet>() {
                return Ok(Cidr(net.trunc()));
            }
            s.parse::<IpAddr>()
                .map(|ip| Cidr(IpNet::from(ip)))
                .map_err(|_| {
                    format!(
                        "invalid network {s:?}: expected CIDR notation such as \"192.168.1.0/24\""
                    )
                })
        })
    }
}

/// A name server address: `"ip:port"`, or `"ip"` for port 53.
struct Nameserver(SocketAddr);

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, |s| {
            if let Ok(addr) = s.parse::<SocketAddr>() {
                return Ok(Nameserver(addr));
            }
            s.parse::<IpAddr>()
                .map(|ip| Nameserver(SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    format!(
                        "invalid name server {s:?}: expected \"ip:port\" or \"ip\" \
                         (port 53), such as \"192.168.1.1\""
                    )
                })
        })
    }
}

/// A byte count: an integer, or a string with a binary multiple (`"50M"`).
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes or a string such as \"50M\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                parse_size(s).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A positive duration: integer seconds, or a string `"30s"`, `"5m"`, `"2h"`.
struct Seconds(Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds or a string such as \"30s\", \"5m\" or \"2h\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                match u64::try_from(v) {
                    Ok(secs) if secs > 0 => Ok(Seconds(Duration::from_secs(secs))),
                    _ => Err(E::custom(format!(
                        "invalid duration {v}: must be at least 1 second"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Seconds, E> {
                parse_duration(s).map(Seconds).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Splits `"50 M"` into `(50, "M")`.
fn split_number(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let number = s[..end].parse().ok()?;
    Some((number, s[end..].trim()))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid size {s:?}: expected a number of bytes, optionally followed by K, M or G \
             (binary multiples, 1K = 1024), such as \"50M\""
        )
    };
    let (number, unit) = split_number(s).ok_or_else(bad)?;
    let multiple = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        _ => return Err(bad()),
    };
    number
        .checked_mul(multiple)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}: expected seconds, or a number followed by s, m or h, \
             such as \"30s\", \"5m\" or \"2h\""
        )
    };
    let (number, unit) = split_number(s).ok_or_else(bad)?;
    let multiple = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    match number.checked_mul(multiple) {
        Some(0) => Err(format!("invalid duration {s:?}: must be at least 1 second")),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(format!("invalid duration {s:?}: too large")),
    }
}

/// Checks the syntax of a host or domain name (RFC 1035 section 2.3.1 as relaxed by RFC 1123
/// section 2.1): dot-separated labels of letters, digits and hyphens.
fn check_domain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !s.is_ascii() {
        return Err(
            "must be ASCII; write an internationalized name in its \"xn--\" form".to_owned(),
        );
    }
    // RFC 1035 section 2.3.4: 255 octets on the wire, 253 characters written out.
    if s.len() > 253 {
        return Err("longer than 253 characters".to_owned());
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(
                "has an empty label (two dots in a row, or a leading or trailing dot)".to_owned(),
            );
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("may contain only letters, digits, hyphens and dots".to_owned());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} begins or ends with a hyphen"));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Building the Config from the raw file: defaults and cross-field checks
// ------------------------------------------------------------------------------------------

struct Builder<'a> {
    origin: &'a str,
    index: &'a KeyIndex,
}

impl Builder<'_> {
    /// An error about `key`, at the line of `key` (or of its nearest written parent table).
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: self.origin.to_owned(),
            line: self.index.line_of(key),
            key: Some(key.to_owned()),
            message: one_line(&message.into()),
        }
    }

    fn build(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        // The board decides the defaults, so it comes first.
        let mut board = raw.board.name.unwrap_or_else(|| SIM_BOARD.to_owned());
        if board == AUTO_BOARD {
            board = detect_board().to_owned();
        }
        if board.is_empty()
            || !board
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(self.err(
                "board.name",
                format!(
                    "invalid board {board:?}: expected \"sim\" or the name of a file in board/, \
                     such as \"rpi4\" (letters, digits, '-' and '_')"
                ),
            ));
        }
        let mut config = Config::base(board);

        self.server(raw.server, &mut config.server)?;
        self.listen(raw.listen, &mut config.listen)?;
        config.tls = self.tls(raw.tls)?;
        if let Some(nets) = raw.auth.plaintext_networks {
            config.auth.plaintext_networks = nets.into_iter().map(|c| c.0).collect();
        }
        if let Some(servers) = raw.dns.nameservers {
            config.dns.nameservers = servers.into_iter().map(|n| n.0).collect();
        }
        config.relay = raw.relay.map(|r| self.relay(r)).transpose()?;
        if let Some(scale) = raw.queue.retry_scale {
            if !(scale > 0.0 && scale <= 1.0) {
                return Err(self.err(
                    "queue.retry_scale",
                    format!("{scale} is not a factor between 0 (exclusive) and 1"),
                ));
            }
            config.queue.retry_scale = RetryScale(scale);
        }
        if let Some(port) = raw.queue.mx_port {
            if port == 0 {
                return Err(self.err("queue.mx_port", "must be between 1 and 65535"));
            }
            config.queue.mx_port = port;
        }
        if let Some(Seconds(t)) = raw.queue.timeout {
            config.queue.timeout = t;
        }
        self.limits(raw.limits, &mut config.limits)?;
        self.watchdog(raw.watchdog, &mut config.watchdog)?;
        if let Some(level) = raw.log.level {
            if level.trim().is_empty() || level.chars().any(char::is_control) {
                return Err(self.err(
                    "log.level",
                    "expected a tracing filter such as \"info\" or \"info,letterbox=debug\"",
                ));
            }
            config.log.level = level;
        }
        config.users = self.users(raw.user, &config)?;
        if let Some(enabled) = raw.ssh.enabled {
            config.ssh.enabled = enabled;
        }
        for (i, key) in raw
            .ssh
            .authorized_keys
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = key.trim().to_owned();
            let known = ["ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-"];
            if !known.iter().any(|p| key.starts_with(p))
                || key.split_whitespace().count() < 2
                || key.chars().any(char::is_control)
            {
                return Err(self.err(
                    "ssh.authorized_keys",
                    format!(
                        "entry {} is not a public key line such as \"ssh-ed25519 AAAA... me@laptop\"",
                        i + 1
                    ),
                ));
            }
            config.ssh.authorized_keys.push(key);
        }
        Ok(config)
    }

    /// `[[user]]`: addresses in the configured domains, each once; passwords of at least 8
    /// characters (the rule of `letterbox user add`).
    fn users(&self, raw: Vec<RawUser>, config: &Config) -> Result<Vec<UserEntry>, ConfigError> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, u) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("user[{i}].{k}");
            let address = u.address.trim().to_ascii_lowercase();
            let local = |a: &str| {
                a.rsplit_once('@')
                    .is_some_and(|(_, d)| config.is_local_domain(d))
            };
            if address.split('@').count() != 2 || address.starts_with('@') {
                return Err(self.err(
                    &key("address"),
                    format!("{address:?} is not an address like \"alice@example.org\""),
                ));
            }
            if !local(&address) {
                return Err(self.err(
                    &key("address"),
                    format!(
                        "{address:?} is not in one of [server] domains ({})",
                        config.server.domains.join(", ")
                    ),
                ));
            }
            if !seen.insert(address.clone()) {
                return Err(self.err(&key("address"), format!("{address:?} is listed twice")));
            }
            let password = match u.password {
                Some(p) if p.chars().count() < 8 => {
                    return Err(self.err(&key("password"), "must have at least 8 characters"));
                }
                Some(p) if p.len() > 1024 || p.chars().any(char::is_control) => {
                    return Err(self.err(
                        &key("password"),
                        "must be at most 1024 bytes, without control characters",
                    ));
                }
                p => p.map(Password),
            };
            let mut aliases = Vec::with_capacity(u.aliases.len());
            for alias in u.aliases {
                let alias = alias.trim().to_ascii_lowercase();
                if alias.split('@').count() != 2 || !local(&alias) {
                    return Err(self.err(
                        &key("aliases"),
                        format!(
                            "{alias:?} is not an address (or @domain) in one of [server] domains"
                        ),
                    ));
                }
                aliases.push(alias);
            }
            out.push(UserEntry {
                address,
                password,
                aliases,
            });
        }
        Ok(out)
    }

    fn server(&self, raw: RawServer, server: &mut ServerConfig) -> Result<(), ConfigError> {
        if let Some(domains) = raw.domains {
            if domains.is_empty() {
                return Err(self.err(
                    "server.domains",
                    "must list at least one domain (the first is the primary domain)",
                ));
            }
            let mut seen = HashSet::new();
            let mut list = Vec::with_capacity(domains.len());
            for HostName(domain) in domains {
                if !seen.insert(domain.clone()) {
                    return Err(self.err(
                        "server.domains",
                        format!("domain {domain:?} is listed twice"),
                    ));
                }
                list.push(domain);
            }
            server.domains = list;
        }
        server.hostname = match raw.hostname {
            Some(HostName(name)) => name,
            None => format!(
                "letterbox.{}",
                server
                    .domains
                    .first()
                    .map_or(DEFAULT_DOMAIN, String::as_str)
            ),
        };
        if let Some(dir) = raw.data_dir {
            if dir.as_os_str().is_empty() {
                return Err(self.err("server.data_dir", "must not be empty"));
            }
            server.data_dir = dir;
        }
        Ok(())
    }

    fn listen(&self, mut raw: RawListen, listen: &mut ListenConfig) -> Result<(), ConfigError> {
        let mut explicit = [false; SERVICES.len()];
        for (i, written) in explicit.iter_mut().enumerate() {
            if let Some(ListenAddr(addr)) = raw.take(i) {
                *listen.slot(i) = addr;
                *written = true;
            }
        }
        let services = listen.services();
        for (b, (name_b, addr_b)) in services.iter().enumerate() {
            let Some(addr_b) = addr_b else { continue };
            for (a, (name_a, addr_a)) in services.iter().enumerate().take(b) {
                let Some(addr_a) = addr_a else { continue };
                if !addresses_clash(*addr_a, *addr_b) {
                    continue;
                }
                // Blame a key written in the file (the later one if both are).
                let (blamed, other, other_written) = if explicit[b] || !explicit[a] {
                    (name_b, (name_a, addr_a), explicit[a])
                } else {
                    (name_a, (name_b, addr_b), explicit[b])
                };
                let blamed_addr = if blamed == name_b { addr_b } else { addr_a };
                return Err(self.err(
                    &format!("listen.{blamed}"),
                    format!(
                        "{blamed_addr} clashes with listen.{} = \"{}\"{}; each service needs \
                         its own address, or \"\" to disable it",
                        other.0,
                        other.1,
                        if other_written { "" } else { " (its default)" },
                    ),
                ));
            }
        }
        Ok(())
    }

    fn tls(&self, raw: RawTls) -> Result<TlsConfig, ConfigError> {
        for (key, path) in [("tls.cert", &raw.cert), ("tls.key", &raw.key)] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(self.err(
                    key,
                    "must not be empty (leave out cert and key for a self-signed certificate)",
                ));
            }
        }
        match (&raw.cert, &raw.key) {
            (Some(_), None) => Err(self.err(
                "tls.cert",
                "is set but tls.key is not; set both, or neither for a self-signed certificate",
            )),
            (None, Some(_)) => Err(self.err(
                "tls.key",
                "is set but tls.cert is not; set both, or neither for a self-signed certificate",
            )),
            _ => Ok(TlsConfig {
                cert: raw.cert,
                key: raw.key,
            }),
        }
    }

    fn relay(&self, raw: RawRelay) -> Result<RelayConfig, ConfigError> {
        let host = match raw.host {
            None => {
                return Err(self.err(
                    "relay.host",
                    "is required in [relay] (remove [relay] to deliver directly to each MX)",
                ));
            }
            Some(host) => host,
        };
        if host.parse::<IpAddr>().is_err()
            && let Err(why) = check_domain(&host)
        {
            return Err(self.err(
                "relay.host",
                format!("invalid host {host:?}: expected a host name or IP address; {why}"),
            ));
        }
        if raw.port == Some(0) {
            return Err(self.err("relay.port", "must be between 1 and 65535"));
        }
        if raw.username.as_deref() == Some("") {
            return Err(self.err("relay.username", "must not be empty"));
        }
        if raw
            .password_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(self.err("relay.password_file", "must not be empty"));
        }
        match (&raw.username, &raw.password_file) {
            (Some(_), None) => {
                return Err(self.err(
                    "relay.username",
                    "is set but relay.password_file is not; set both, or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(self.err(
                    "relay.password_file",
                    "is set but relay.username is not; set both, or neither",
                ));
            }
            _ => {}
        }
        let security = raw.security.unwrap_or_default();
        if security == RelaySecurity::None && raw.username.is_some() {
            return Err(self.err(
                "relay.security",
                "\"none\" would send the relay password in clear text; use \"starttls\" or \
                 \"tls\", or remove username and password_file",
            ));
        }
        Ok(RelayConfig {
            host,
            port: raw.port.unwrap_or(security.default_port()),
            username: raw.username,
            password_file: raw.password_file,
            security,
        })
    }

    fn limits(&self, raw: RawLimits, limits: &mut LimitsConfig) -> Result<(), ConfigError> {
        if let Some(Size(size)) = raw.max_message_size {
            // RFC 5321 section 4.5.3.1.7: a server must accept messages of at least 64K octets.
            if size < 64 * KIB {
                return Err(self.err(
                    "limits.max_message_size",
                    format!("{size} bytes is below the 64K minimum of RFC 5321"),
                ));
            }
            limits.max_message_size = size;
        }
        if let Some(Size(size)) = raw.max_message_memory {
            if size < limits.max_message_size {
                return Err(self.err(
                    "limits.max_message_memory",
                    format!(
                        "{size} bytes is below max_message_size ({} bytes): no message of \
                         the largest size could be received",
                        limits.max_message_size
                    ),
                ));
            }
            limits.max_message_memory = Some(size);
        }
        for (key, value, slot) in [
            (
                "limits.max_connections",
                raw.max_connections,
                &mut limits.max_connections,
            ),
            (
                "limits.max_connections_per_ip",
                raw.max_connections_per_ip,
                &mut limits.max_connections_per_ip,
            ),
            (
                "limits.max_recipients",
                raw.max_recipients,
                &mut limits.max_recipients,
            ),
        ] {
            match value {
                Some(0) => return Err(self.err(key, "must be at least 1")),
                Some(v) => *slot = v,
                None => {}
            }
        }
        if let Some(len) = raw.max_line_length {
            // RFC 5321 section 4.5.3.1.6: text lines of up to 1000 octets, CRLF included.
            if len < 1000 {
                return Err(self.err(
                    "limits.max_line_length",
                    format!("{len} is below the 1000-octet minimum of RFC 5321"),
                ));
            }
            limits.max_line_length = len;
        }
        for (value, slot) in [
            (raw.smtp_idle_timeout, &mut limits.smtp_idle_timeout),
            (raw.imap_idle_timeout, &mut limits.imap_idle_timeout),
            (raw.pop3_idle_timeout, &mut limits.pop3_idle_timeout),
            (raw.session_timeout, &mut limits.session_timeout),
        ] {
            if let Some(Seconds(d)) = value {
                *slot = d;
            }
        }
        Ok(())
    }

    fn watchdog(&self, raw: RawWatchdog, watchdog: &mut WatchdogConfig) -> Result<(), ConfigError> {
        if let Some(device) = raw.device {
            watchdog.device = (!device.as_os_str().is_empty()).then_some(device);
        }
        if let Some(timeout) = raw.timeout_s {
            if !(1..=MAX_WATCHDOG_TIMEOUT_S).contains(&timeout) {
                return Err(self.err(
                    "watchdog.timeout_s",
                    format!(
                        "{timeout} is out of range: expected 1 to {MAX_WATCHDOG_TIMEOUT_S} \
                         seconds (at most {BCM2835_MAX_WATCHDOG_TIMEOUT_S} on a Raspberry Pi)"
                    ),
                ));
            }
            watchdog.timeout_s = timeout;
        }
        Ok(())
    }
}

/// Erases the plaintext of every `[[user]] password` in the file at `path` (a symlink is
/// followed, so the file on the boot partition is the one rewritten): each `password = ...`
/// line becomes a comment saying it was applied. The file is replaced atomically (written
/// beside it, synced, renamed). Returns how many passwords were erased; a password inside an
/// inline table cannot be erased line-wise and is left, with an error for the caller to log.
pub fn erase_passwords(path: &Path) -> std::io::Result<usize> {
    use std::io::Write;
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let path = std::fs::canonicalize(path)?;
    let text = std::fs::read_to_string(&path)?;
    let doc = DeTable::parse(&text).map_err(|e| invalid(one_line(&e.to_string())))?;
    let index = KeyIndex::new(&text, doc.get_ref());
    let mut lines: Vec<Range<usize>> = Vec::new();
    let mut inline = 0;
    for e in &index.entries {
        let Some(rest) = e.path.strip_prefix("user[") else {
            continue;
        };
        if !rest.ends_with("].password") || e.depth != 2 {
            continue;
        }
        let start = text[..e.key.start].rfind('\n').map_or(0, |i| i + 1);
        let end = text[e.value.end..]
            .find('\n')
            .map_or(text.len(), |i| e.value.end + i);
        let before = &text[start..e.key.start];
        let after = text[e.value.end..end].trim_start();
        if before.trim().is_empty() && (after.is_empty() || after.starts_with('#')) {
            lines.push(start..end);
        } else {
            inline += 1;
        }
    }
    if lines.is_empty() {
        return if inline > 0 {
            Err(invalid(format!(
                "{inline} password(s) in inline tables cannot be erased; write them as [[user]] tables"
            )))
        } else {
            Ok(0)
        };
    }
    lines.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in &lines {
        out.push_str(&text[at..r.start]);
        let indent: String = text[r.start..]
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect();
        out.push_str(&indent);
        out.push_str("# password = \"...\": applied to the account and erased from this file");
        at = r.end;
    }
    out.push_str(&text[at..]);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.new"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(&path) {
            let _ = f.set_permissions(meta.permissions());
        }
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    // Make the rename durable; FAT and some filesystems refuse to sync a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    if inline > 0 {
        return Err(invalid(format!(
            "{inline} password(s) in inline tables cannot be erased; write them as [[user]] tables"
        )));
    }
    Ok(lines.len())
}

/// Whether two listeners cannot both bind: same port and the same address, or one is a
/// wildcard covering the other (`0.0.0.0` covers IPv4; `[::]` is dual-stack on Linux).
fn addresses_clash(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() {
        return false;
    }
    let covers = |wild: IpAddr, other: IpAddr| {
        wild.is_unspecified() && (wild.is_ipv4() == other.is_ipv4() || wild.is_ipv6())
    };
    a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip())
}

// ------------------------------------------------------------------------------------------
// Locating keys: line numbers and dotted paths for error messages
// ------------------------------------------------------------------------------------------

/// Where each key of the document is, to turn byte offsets into lines and key paths.
struct KeyIndex {
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    entries: Vec<KeyEntry>,
}

struct KeyEntry {
    path: String,
    depth: usize,
    /// Whether the value is a table.
    table: bool,
    key: Range<usize>,
    value: Range<usize>,
}

impl KeyIndex {
    fn new(text: &str, root: &DeTable<'_>) -> KeyIndex {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut index = KeyIndex {
            line_starts,
            entries: Vec::new(),
        };
        index.walk(root, "", 0);
        index
    }

    fn walk(&mut self, table: &DeTable<'_>, prefix: &str, depth: usize) {
        for (key, value) in table.iter() {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.entries.push(KeyEntry {
                path: path.clone(),
                depth,
                table: matches!(value.get_ref(), DeValue::Table(_)),
                key: key.span(),
                value: value.span(),
            });
            match value.get_ref() {
                DeValue::Table(inner) => self.walk(inner, &path, depth + 1),
                // `[[user]]` tables: each element is `user[i]`.
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(inner) = item.get_ref() {
                            let elem = format!("{path}[{i}]");
                            self.entries.push(KeyEntry {
                                path: elem.clone(),
                                depth: depth + 1,
                                table: true,
                                key: item.span(),
                                value: item.span(),
                            });
                            self.walk(inner, &elem, depth + 2);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// The line of `key`, or of its nearest parent written in the file.
    fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(entry) = self.entries.iter().find(|e| e.path == key) {
                return Some(self.line(entry.key.start));
            }
            key = &key[..key.rfind('.')?];
        }
    }

    /// The innermost key whose name or value holds byte `offset`.
    fn key_at(&self, offset: usize) -> Option<&str> {
        let holds = |r: &Range<usize>| r.start <= offset && offset < r.end.max(r.start + 1);
        self.entries
            .iter()
            .filter(|e| holds(&e.key) || holds(&e.value))
            .max_by_key(|e| e.depth)
            .map(|e| e.path.as_str())
    }

    /// The key assigned on the line holding byte `offset` (`name = ...`), prefixed with the
    /// `[table]` above it; for syntax errors the recovered document does not cover.
    fn key_on_line(&self, text: &str, offset: usize) -> Option<String> {
        let line_start = *self.line_starts.get(self.line(offset).checked_sub(1)?)?;
        let line = text[line_start..].split('\n').next()?;
        let name = line.split_once('=')?.0.trim();
        let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
        if name.is_empty() || !name.chars().all(bare) {
            return None;
        }
        let header_line = |e: &&KeyEntry| {
            let start = self.line_starts[self.line(e.key.start) - 1];
            text[start..].trim_start().starts_with('[')
        };
        let table = self
            .entries
            .iter()
            .filter(|e| e.table && e.key.start < line_start)
            .filter(header_line)
            .max_by_key(|e| e.key.start);
        Some(match table {
            Some(table) => format!("{}.{name}", table.path),
            None => name.to_owned(),
        })
    }

    /// Converts an error from deserializing the document.
    fn toml_error(&self, origin: &str, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map(|s| s.start);
        ConfigError {
            origin: origin.to_owned(),
            line: offset.map(|o| self.line(o)),
            key: offset.and_then(|o| self.key_at(o)).map(str::to_owned),
            message: one_line(&rename_unknown_field(e.message())),
        }
    }
}

/// serde says "unknown field"; a TOML user writes keys and tables.
fn rename_unknown_field(message: &str) -> String {
    match message.strip_prefix("unknown field ") {
        Some(rest) => format!("unknown key {rest}"),
        None => message.to_owned(),
    }
}

/// Converts a TOML syntax error, naming the key when the recovered part of the document shows
/// which one it is in.
fn syntax_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let (partial, _) = DeTable::parse_recoverable(text);
    let index = KeyIndex::new(text, partial.get_ref());
    let mut error = index.toml_error(origin, e);
    if error.key.is_none()
        && let Some(span) = e.span()
    {
        error.key = index.key_on_line(text, span.start);
    }
    error
}

/// Puts a message on one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn parse(text: &str) -> Config {
        match Config::parse(text, "test.toml") {
            Ok(config) => config,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    /// Parses `text`, which must fail, and checks the line and key of the error.
    #[track_caller]
    fn fails(text: &str, line: usize, key: &str) -> ConfigError {
        let e = match Config::parse(text, "test.toml") {
            Ok(_) => panic!("parsed without error: {text}"),
            Err(e) => e,
        };
        assert_eq!((e.line, e.key.as_deref()), (Some(line), Some(key)), "{e}");
        assert!(!e.to_string().contains('\n'), "{e:?}");
        assert!(!e.message.is_empty());
        assert_eq!(e.origin, "test.toml");
        e
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn board_auto_follows_the_device_tree() {
        assert_eq!(board_for_model("Raspberry Pi 4 Model B Rev 1.5\0"), "rpi4");
        assert_eq!(
            board_for_model("Raspberry Pi 3 Model B Plus Rev 1.3"),
            "rpi3"
        );
        assert_eq!(board_for_model("Raspberry Pi 5 Model B Rev 1.0"), "rpi5");
        assert_eq!(
            board_for_model("Raspberry Pi Zero 2 W Rev 1.0"),
            "rpi-zero2w"
        );
        assert_eq!(
            board_for_model("Raspberry Pi Compute Module 4 Rev 1.0"),
            "rpi4"
        );
        assert_eq!(board_for_model("linux,dummy-virt"), NONE_BOARD);
        assert_eq!(board_for_model("Raspberry Pi Model B Rev 2"), NONE_BOARD);
        // On this host (no device tree, or not a Pi) "auto" gives the appliance defaults
        // on the LED-less board "none", unless the model file says otherwise.
        let c = parse("[board]\nname = \"auto\"\n");
        assert_ne!(c.board.name, AUTO_BOARD);
        assert!(c.is_appliance());
        assert_eq!(c.listen.imaps, Some(sa("0.0.0.0:993")));
    }

    #[test]
    fn users_and_ssh() {
        let c = parse(
            "[server]\ndomains = [\"example.org\"]\n\n[[user]]\naddress = \"Alice@Example.org\"\n\
             password = \"correct horse\"\naliases = [\"a@example.org\", \"@example.org\"]\n\n\
             [[user]]\naddress = \"bob@example.org\"\n\n[ssh]\nenabled = true\n\
             authorized_keys = [\"ssh-ed25519 AAAAC3Nza me@laptop\"]\n",
        );
        assert_eq!(c.users.len(), 2);
        assert_eq!(c.users[0].address, "alice@example.org");
        assert_eq!(c.users[0].password, Some(Password("correct horse".into())));
        assert_eq!(c.users[0].aliases, ["a@example.org", "@example.org"]);
        assert_eq!(c.users[1].password, None);
        assert!(
            !format!("{c:?}").contains("correct horse"),
            "Debug leaks the password"
        );
        assert!(c.ssh.enabled);
        assert_eq!(c.ssh.authorized_keys, ["ssh-ed25519 AAAAC3Nza me@laptop"]);
        assert_eq!(Config::defaults().ssh, SshConfig::default());

        let e = fails(
            "[[user]]\naddress = \"a@home.arpa\"\npassword = \"short\"\n",
            3,
            "user[0].password",
        );
        assert!(e.message.contains("8 characters"), "{e}");
        fails(
            "[[user]]\naddress = \"a@elsewhere.example\"\n",
            2,
            "user[0].address",
        );
        fails(
            "[[user]]\naddress = \"a@home.arpa\"\n[[user]]\naddress = \"A@home.arpa\"\n",
            4,
            "user[1].address",
        );
        fails(
            "[[user]]\naddress = \"a@home.arpa\"\nnickname = \"x\"\n",
            3,
            "user[0].nickname",
        );
        fails(
            "[[user]]\naddress = \"a@home.arpa\"\naliases = [\"x@other.example\"]\n",
            3,
            "user[0].aliases",
        );
        fails(
            "[ssh]\nauthorized_keys = [\"hunter2\"]\n",
            2,
            "ssh.authorized_keys",
        );
        fails("[ssh]\nenabled = \"yes\"\n", 2, "ssh.enabled");
    }

    #[test]
    fn erase_passwords_rewrites_only_the_password_lines() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("letterbox.toml");
        let text = "# my box\n[[user]]\naddress = \"a@home.arpa\"\n  password = \"secret one\" # first\n\n\
                    [[user]]\naddress = \"b@home.arpa\"\npassword = '''multi\nline pw'''\n[log]\nlevel = \"info\"\n";
        std::fs::write(&real, text).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(erase_passwords(&link).unwrap(), 2);
        assert!(link.is_symlink(), "the symlink must stay a symlink");
        let after = std::fs::read_to_string(&real).unwrap();
        assert!(
            !after.contains("secret one") && !after.contains("line pw"),
            "{after}"
        );
        assert!(
            after.starts_with("# my box\n[[user]]\naddress = \"a@home.arpa\"\n  # password"),
            "{after}"
        );
        let c = Config::parse(&after, "after").unwrap();
        assert_eq!(c.users.len(), 2);
        assert!(c.users.iter().all(|u| u.password.is_none()));
        assert_eq!(c.log.level, "info");
        // Nothing left to erase.
        assert_eq!(erase_passwords(&real).unwrap(), 0);
        // An inline table is reported, not mangled.
        let inline = "user = [{ address = \"a@home.arpa\", password = \"secret one\" }]\n";
        std::fs::write(&real, inline).unwrap();
        assert!(erase_passwords(&real).is_err());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), inline);
    }

    #[test]
    fn host_defaults() {
        let c = Config::defaults();
        assert_eq!(c, parse(""));
        assert!(!c.is_appliance());
        assert_eq!(c.board.name, "sim");
        assert_eq!(c.server.domains, ["home.arpa"]);
        assert_eq!(c.primary_domain(), "home.arpa");
        assert_eq!(c.server.hostname, "letterbox.home.arpa");
        assert_eq!(c.server.data_dir, Path::new("./letterbox-data"));
        let l = &c.listen;
        assert_eq!(l.smtp, Some(sa("127.0.0.1:2525")));
        assert_eq!(l.submission, Some(sa("127.0.0.1:2587")));
        assert_eq!(l.submissions, Some(sa("127.0.0.1:2465")));
        assert_eq!(l.imap, Some(sa("127.0.0.1:2143")));
        assert_eq!(l.imaps, Some(sa("127.0.0.1:2993")));
        assert_eq!(l.pop3, Some(sa("127.0.0.1:2110")));
        assert_eq!(l.pop3s, Some(sa("127.0.0.1:2995")));
        assert_eq!(c.tls, TlsConfig::default());
        assert_eq!(
            c.auth.plaintext_networks,
            [
                "127.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
        assert!(c.dns.nameservers.is_empty());
        assert!(c.relay.is_none());
        assert_eq!(c.limits.max_message_size, 50 * 1024 * 1024);
        assert_eq!(c.limits.max_connections, 200);
        assert_eq!(c.limits.max_connections_per_ip, 20);
        assert_eq!(c.limits.max_recipients, 100);
        assert_eq!(c.limits.max_line_length, 8192);
        assert_eq!(c.limits.smtp_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.limits.imap_idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.limits.pop3_idle_timeout, Duration::from_secs(600));
        assert_eq!(c.limits.session_timeout, Duration::from_secs(1800));
        assert_eq!(c.watchdog.device, None);
        assert_eq!(c.watchdog.timeout_s, 15);
        assert_eq!(c.log.level, "info");
    }

    #[test]
    fn appliance_defaults() {
        let c = parse("[board]\nname = \"rpi4\"\n");
        assert!(c.is_appliance());
        assert_eq!(c.server.data_dir, Path::new("/var/lib/letterbox"));
        assert_eq!(
            c.watchdog.device.as_deref(),
            Some(Path::new("/dev/watchdog"))
        );
        let expected = [25, 587, 465, 143, 993, 110, 995];
        for ((name, addr), port) in c.listen.services().into_iter().zip(expected) {
            assert_eq!(addr, Some(SocketAddr::from(([0, 0, 0, 0], port))), "{name}");
        }
        // Everything not board-dependent is as on the host.
        let host = Config::defaults();
        assert_eq!(c.limits, host.limits);
        assert_eq!(c.server.domains, host.server.domains);
        assert_eq!(c.auth, host.auth);
    }

    #[test]
    fn explicit_keys_win_over_appliance_defaults() {
        let c = parse(
            "[board]\nname = \"rpi4\"\n[server]\ndata_dir = \"/srv/mail\"\n\
             [listen]\nimap = \"\"\npop3 = \"\"\nsmtp = \"192.168.1.2:25\"\n\
             [watchdog]\ndevice = \"\"\n",
        );
        assert_eq!(c.server.data_dir, Path::new("/srv/mail"));
        assert_eq!(c.listen.imap, None);
        assert_eq!(c.listen.pop3, None);
        assert_eq!(c.listen.smtp, Some(sa("192.168.1.2:25")));
        assert_eq!(c.listen.imaps, Some(sa("0.0.0.0:993")));
        assert_eq!(c.watchdog.device, None);
    }

    const FULL: &str = r#"
[server]
hostname = "mx.example.org"
domains = ["Example.ORG", "example.net"]
data_dir = "/data/letterbox"

[listen]
smtp = "0.0.0.0:25"
submission = "[::]:587"
submissions = "192.168.1.10:465"
imap = ""
imaps = "0.0.0.0:993"
pop3 = ""
pop3s = "0.0.0.0:995"

[tls]
cert = "/etc/letterbox/fullchain.pem"
key = "/etc/letterbox/key.pem"

[auth]
plaintext_networks = ["127.0.0.0/8", "::1/128", "192.168.1.0/24", "10.1.2.3"]

[dns]
nameservers = ["192.168.1.1", "127.0.0.1:5353", "[::1]:53"]

[relay]
host = "smtp.isp.example"
username = "me@isp.example"
password_file = "/etc/letterbox/relay.pass"
security = "tls"

[queue]
retry_scale = 0.01
mx_port = 2525
timeout = "1m"

[limits]
max_message_size = "25MiB"
max_connections = 50
max_connections_per_ip = 5
max_recipients = 40
max_line_length = 4096
smtp_idle_timeout = "10m"
imap_idle_timeout = "1h"
pop3_idle_timeout = 900
session_timeout = "2h"

[board]
name = "rpi5"

[watchdog]
device = "/dev/watchdog1"
timeout_s = 10

[log]
level = "info,letterbox::smtp=debug"
"#;

    #[test]
    fn full_example() {
        let c = parse(FULL);
        let expected = Config {
            server: ServerConfig {
                hostname: "mx.example.org".into(),
                domains: vec!["example.org".into(), "example.net".into()],
                data_dir: "/data/letterbox".into(),
            },
            listen: ListenConfig {
                smtp: Some(sa("0.0.0.0:25")),
                submission: Some(sa("[::]:587")),
                submissions: Some(sa("192.168.1.10:465")),
                imap: None,
                imaps: Some(sa("0.0.0.0:993")),
                pop3: None,
                pop3s: Some(sa("0.0.0.0:995")),
            },
            tls: TlsConfig {
                cert: Some("/etc/letterbox/fullchain.pem".into()),
                key: Some("/etc/letterbox/key.pem".into()),
            },
            auth: AuthConfig {
                plaintext_networks: ["127.0.0.0/8", "::1/128", "192.168.1.0/24", "10.1.2.3/32"]
                    .iter()
                    .map(|s| s.parse().unwrap())
                    .collect(),
            },
            dns: DnsConfig {
                nameservers: vec![sa("192.168.1.1:53"), sa("127.0.0.1:5353"), sa("[::1]:53")],
            },
            relay: Some(RelayConfig {
                host: "smtp.isp.example".into(),
                port: 465,
                username: Some("me@isp.example".into()),
                password_file: Some("/etc/letterbox/relay.pass".into()),
                security: RelaySecurity::Tls,
            }),
            queue: QueueConfig {
                retry_scale: RetryScale(0.01),
                mx_port: 2525,
                timeout: Duration::from_secs(60),
            },
            limits: LimitsConfig {
                max_message_size: 25 * 1024 * 1024,
                max_connections: 50,
                max_connections_per_ip: 5,
                max_recipients: 40,
                max_message_memory: None,
                max_line_length: 4096,
                smtp_idle_timeout: Duration::from_secs(600),
                imap_idle_timeout: Duration::from_secs(3600),
                pop3_idle_timeout: Duration::from_secs(900),
                session_timeout: Duration::from_secs(7200),
            },
            board: BoardConfig {
                name: "rpi5".into(),
            },
            watchdog: WatchdogConfig {
                device: Some("/dev/watchdog1".into()),
                timeout_s: 10,
            },
            log: LogConfig {
                level: "info,letterbox::smtp=debug".into(),
            },
            users: Vec::new(),
            ssh: SshConfig::default(),
        };
        assert_eq!(c, expected);
        assert_eq!(c.primary_domain(), "example.org");
        assert!(c.is_local_domain("EXAMPLE.net"));
        assert!(c.is_local_domain("example.org."));
        assert!(!c.is_local_domain("sub.example.org"));
        assert!(c.is_appliance());
    }

    #[test]
    fn hostname_follows_primary_domain() {
        let c = parse("[server]\ndomains = [\"Example.com\"]\n");
        assert_eq!(c.server.hostname, "letterbox.example.com");
        assert!(c.is_local_domain("example.COM"));
        assert!(!c.is_local_domain("home.arpa"));
    }

    #[test]
    fn relay_defaults() {
        let port = |sec: &str| {
            parse(&format!("[relay]\nhost = \"relay.example\"\n{sec}"))
                .relay
                .unwrap()
        };
        let r = port("");
        assert_eq!((r.security, r.port), (RelaySecurity::StartTls, 587));
        assert_eq!(r.username, None);
        assert_eq!(port("security = \"tls\"").port, 465);
        assert_eq!(port("security = \"none\"").port, 25);
        assert_eq!(port("security = \"none\"\nport = 2525").port, 2525);
        assert_eq!(
            parse("[relay]\nhost = \"10.0.0.1\"").relay.unwrap().host,
            "10.0.0.1"
        );
    }

    #[test]
    fn sizes_and_durations() {
        for (text, bytes) in [
            ("65536", 65536),
            ("\"512K\"", 512 * 1024),
            ("\"50M\"", 50 << 20),
            ("\"50MiB\"", 50 << 20),
            ("\"50 MB\"", 50 << 20),
            ("\"1G\"", 1 << 30),
            ("\"1gib\"", 1 << 30),
            ("\"100000\"", 100_000),
            ("\"100000B\"", 100_000),
        ] {
            let c = parse(&format!("[limits]\nmax_message_size = {text}"));
            assert_eq!(c.limits.max_message_size, bytes, "{text}");
        }
        for (text, secs) in [
            ("45", 45),
            ("\"30s\"", 30),
            ("\"5m\"", 300),
            ("\"2h\"", 7200),
        ] {
            let c = parse(&format!("[limits]\nsmtp_idle_timeout = {text}"));
            assert_eq!(
                c.limits.smtp_idle_timeout,
                Duration::from_secs(secs),
                "{text}"
            );
        }
    }

    #[test]
    fn plaintext_networks() {
        let c = Config::defaults();
        assert!(c.is_plaintext_allowed(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(c.is_plaintext_allowed(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53))));
        assert!(c.is_plaintext_allowed(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(c.is_plaintext_allowed("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.is_plaintext_allowed("10.0.0.1".parse().unwrap()));
        assert!(!c.is_plaintext_allowed("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!c.is_plaintext_allowed("::2".parse().unwrap()));

        let c = parse("[auth]\nplaintext_networks = [\"10.0.0.0/8\"]\n");
        assert!(c.is_plaintext_allowed("10.0.0.1".parse().unwrap()));
        assert!(c.is_plaintext_allowed("::ffff:10.200.0.1".parse().unwrap()));
        assert!(!c.is_plaintext_allowed("127.0.0.1".parse().unwrap()));

        // Host bits are cleared; an empty list means TLS everywhere.
        let c = parse("[auth]\nplaintext_networks = [\"192.168.1.77/24\"]\n");
        assert_eq!(
            c.auth.plaintext_networks,
            ["192.168.1.0/24".parse::<IpNet>().unwrap()]
        );
        let c = parse("[auth]\nplaintext_networks = []\n");
        assert!(!c.is_plaintext_allowed("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn syntax_error() {
        let e = fails(
            "[server]\nhostname = \"a.example\"\n\n[limits]\nmax_connections = 12x\n",
            5,
            "limits.max_connections",
        );
        assert!(
            e.to_string()
                .starts_with("test.toml:5: limits.max_connections: "),
            "{e}"
        );
        // Without a key to name.
        let e = Config::parse("[server]\n\n[limits\n", "test.toml").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        // A key written twice.
        fails("[listen]\nsmtp = \"\"\nsmtp = \"\"\n", 3, "listen.smtp");
    }

    #[test]
    fn unknown_keys() {
        let e = fails(
            "[limits]\nmax_connections = 5\nmax_mesage_size = 5\n",
            3,
            "limits.max_mesage_size",
        );
        assert!(
            e.message.starts_with("unknown key `max_mesage_size`"),
            "{e}"
        );
        fails(
            "[server]\ndomains = [\"a.example\"]\n\n[limitz]\nmax_connections = 5\n",
            4,
            "limitz",
        );
        fails("\n\nfoo = 1\n", 3, "foo");
        // Dotted keys and inline tables name the full path too.
        fails("\nlimits.max_conections = 5\n", 2, "limits.max_conections");
        fails(
            "\n\nrelay = { host = \"r.example\", prot = 25 }\n",
            3,
            "relay.prot",
        );
    }

    #[test]
    fn wrong_types() {
        let e = fails(
            "[limits]\n\nmax_connections = \"lots\"\n",
            3,
            "limits.max_connections",
        );
        assert!(e.message.contains("lots"), "{e}");
        fails("server = 5\n", 1, "server");
        fails(
            "[limits]\nmax_connections = -1\n",
            2,
            "limits.max_connections",
        );
        fails("[listen]\nsmtp = 25\n", 2, "listen.smtp");
        fails(
            "[limits]\nmax_message_size = 1.5\n",
            2,
            "limits.max_message_size",
        );
    }

    #[test]
    fn bad_values() {
        let e = fails(
            "[listen]\nsmtp = \"\"\nimap = \"localhost:x\"\n",
            3,
            "listen.imap",
        );
        assert!(e.message.contains("localhost:x"), "{e}");
        let e = fails(
            "[auth]\nplaintext_networks = [\n  \"127.0.0.0/8\",\n  \"10.0.0/8\",\n]\n",
            4,
            "auth.plaintext_networks",
        );
        assert!(e.message.contains("10.0.0/8"), "{e}");
        fails(
            "[server]\ndomains = [\"example.org\", \"exa_mple.com\"]\n",
            2,
            "server.domains",
        );
        fails(
            "[server]\ndomains = [\"a..example\"]\n",
            2,
            "server.domains",
        );
        fails(
            "[server]\ndomains = [\"-a.example\"]\n",
            2,
            "server.domains",
        );
        fails(
            "[server]\ndomains = [\"a.example\", \"A.example\"]\n",
            2,
            "server.domains",
        );
        let e = fails(
            "[server]\nhostname = \"x.example\"\ndomains = []\n",
            3,
            "server.domains",
        );
        assert!(e.message.contains("at least one"), "{e}");
        let e = fails(
            "[relay]\nhost = \"r.example\"\nsecurity = \"ssl\"\n",
            3,
            "relay.security",
        );
        assert!(e.message.contains("starttls"), "{e}");
        let e = fails(
            "[limits]\nmax_message_size = \"50 furlongs\"\n",
            2,
            "limits.max_message_size",
        );
        assert!(e.message.contains("50 furlongs"), "{e}");
        fails(
            "[limits]\nmax_message_size = 1000\n",
            2,
            "limits.max_message_size",
        );
        fails(
            "[limits]\nmax_message_size = -5\n",
            2,
            "limits.max_message_size",
        );
        fails(
            "[limits]\nsmtp_idle_timeout = \"5 weeks\"\n",
            2,
            "limits.smtp_idle_timeout",
        );
        fails(
            "[limits]\nsmtp_idle_timeout = 0\n",
            2,
            "limits.smtp_idle_timeout",
        );
        fails("[limits]\nmax_recipients = 0\n", 2, "limits.max_recipients");
        fails(
            "[limits]\nmax_line_length = 80\n",
            2,
            "limits.max_line_length",
        );
        fails(
            "[dns]\nnameservers = [\"dns.example\"]\n",
            2,
            "dns.nameservers",
        );
        fails("[board]\nname = \"../etc\"\n", 2, "board.name");
        fails("[log]\nlevel = \"\"\n", 2, "log.level");
        fails("[server]\ndata_dir = \"\"\n", 2, "server.data_dir");
    }

    #[test]
    fn empty_hostname() {
        let e = fails("[server]\n\nhostname = \"\"\n", 3, "server.hostname");
        assert!(e.message.contains("empty"), "{e}");
        fails(
            "[server]\nhostname = \"mail server\"\n",
            2,
            "server.hostname",
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let e = fails("[tls]\n\ncert = \"/c.pem\"\n", 3, "tls.cert");
        assert!(e.message.contains("tls.key"), "{e}");
        fails("[tls]\nkey = \"/k.pem\"\n", 2, "tls.key");
        fails("[tls]\ncert = \"\"\nkey = \"/k.pem\"\n", 2, "tls.cert");
    }

    #[test]
    fn relay_checks() {
        let e = fails(
            "[relay]\nhost = \"r.example\"\nusername = \"me\"\n",
            3,
            "relay.username",
        );
        assert!(e.message.contains("password_file"), "{e}");
        fails(
            "[relay]\nhost = \"r.example\"\npassword_file = \"/p\"\n",
            3,
            "relay.password_file",
        );
        fails("[queue]\nretry_scale = 0\n", 2, "queue.retry_scale");
        fails("[queue]\nretry_scale = 1.5\n", 2, "queue.retry_scale");
        fails("[queue]\nmx_port = 0\n", 2, "queue.mx_port");
        // A missing key is reported at its table.
        fails("\n[relay]\nport = 25\n", 2, "relay.host");
        fails("[relay]\nhost = \"\"\n", 2, "relay.host");
        fails("[relay]\nhost = \"r.example\"\nport = 0\n", 3, "relay.port");
        fails(
            "[relay]\nhost = \"r.example\"\nusername = \"me\"\npassword_file = \"/p\"\nsecurity = \"none\"\n",
            5,
            "relay.security",
        );
    }

    #[test]
    fn message_memory_is_explicit_or_derived() {
        let c = parse("[limits]\nmax_message_memory = \"2G\"\n");
        assert_eq!(c.limits.message_memory(), 2 * GIB);
        fails(
            "[limits]\nmax_message_size = \"10M\"\nmax_message_memory = \"9M\"\n",
            3,
            "limits.max_message_memory",
        );
        let auto = Config::defaults().limits.message_memory();
        assert!((100 * MIB..=GIB).contains(&auto), "{auto}");
        let c = parse("[limits]\nmax_message_size = \"1G\"\n");
        assert_eq!(
            c.limits.message_memory(),
            2 * GIB,
            "at least twice the largest message"
        );
    }

    #[test]
    fn watchdog_timeout_range() {
        fails("[watchdog]\ntimeout_s = 0\n", 2, "watchdog.timeout_s");
        fails("[watchdog]\ntimeout_s = 61\n", 2, "watchdog.timeout_s");
        assert_eq!(parse("[watchdog]\ntimeout_s = 60\n").watchdog.timeout_s, 60);
        assert_eq!(parse("[watchdog]\ntimeout_s = 1\n").watchdog.timeout_s, 1);
    }

    #[test]
    fn duplicate_listen_addresses() {
        let e = fails(
            "[listen]\nimap = \"0.0.0.0:1143\"\nimaps = \"0.0.0.0:1143\"\n",
            3,
            "listen.imaps",
        );
        assert!(e.message.contains("listen.imap "), "{e}");
        // A written key clashing with a default: the written one is blamed.
        let e = fails(
            "\n[listen]\npop3s = \"127.0.0.1:2525\"\n",
            3,
            "listen.pop3s",
        );
        assert!(
            e.message.contains("listen.smtp") && e.message.contains("default"),
            "{e}"
        );
        let e = fails("[listen]\nsmtp = \"127.0.0.1:2143\"\n", 2, "listen.smtp");
        assert!(e.message.contains("listen.imap"), "{e}");
        // Wildcards cover specific addresses; disabled services clash with nothing.
        fails(
            "[listen]\nsmtp = \"0.0.0.0:25\"\nsubmission = \"192.168.1.2:25\"\n",
            3,
            "listen.submission",
        );
        fails(
            "[listen]\nsmtp = \"[::]:25\"\nsubmission = \"192.168.1.2:25\"\n",
            3,
            "listen.submission",
        );
        let c = parse(
            "[listen]\nsmtp = \"0.0.0.0:25\"\nsubmission = \"[::1]:25\"\nimap = \"\"\npop3 = \"\"\n",
        );
        assert_eq!(c.listen.submission, Some(sa("[::1]:25")));
    }

    #[test]
    fn display_is_one_line() {
        let e = ConfigError {
            origin: "letterbox.toml".into(),
            line: Some(7),
            key: Some("limits.max_connections".into()),
            message: "bad".into(),
        };
        assert_eq!(
            e.to_string(),
            "letterbox.toml:7: limits.max_connections: bad"
        );
        let e = ConfigError {
            line: None,
            key: None,
            ..e
        };
        assert_eq!(e.to_string(), "letterbox.toml: bad");

        let missing = Path::new("/nonexistent/letterbox.toml");
        let e = Config::load(missing).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (None, None));
        assert!(
            e.to_string()
                .starts_with("/nonexistent/letterbox.toml: cannot read: "),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'));
    }

    /// Uncomments the "#key = default" lines of a documented file (prose is "# ...").
    fn uncomment_defaults(text: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if !rest.starts_with([' ', '#']) && !rest.is_empty() => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The appliance's documented configuration states the appliance defaults exactly.
    #[test]
    fn image_config_documents_the_defaults() {
        let text = include_str!("../image/letterbox.toml");
        // The image's "auto" resolves to whatever board this machine is (on a build host:
        // "none"); the rest must be the appliance defaults.
        let appliance = parse(&format!("[board]\nname = {:?}\n", detect_board()));
        assert_eq!(parse(text), appliance);
        let uncommented = uncomment_defaults(text);
        assert!(uncommented.contains("\nmax_message_size = \"50M\""));
        assert_eq!(parse(&uncommented), appliance);
    }

    #[test]
    fn load_reads_the_file() {
        let path =
            std::env::temp_dir().join(format!("letterbox-config-test-{}.toml", std::process::id()));
        std::fs::write(&path, "[limits]\nmax_connections = \"lots\"\n").unwrap();
        let e = Config::load(&path).unwrap_err();
        std::fs::write(&path, "[limits]\nmax_connections = 7\n").unwrap();
        let c = Config::load(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(e.origin, path.display().to_string());
        assert_eq!(e.line, Some(2));
        assert_eq!(c.unwrap().limits.max_connections, 7);
    }
}

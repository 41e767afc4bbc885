//! The `letterbox` command line (SPEC §4): parses arguments, loads the config, and
//! either runs the daemon or sends one admin request (to the daemon's socket, or to
//! the store directly when no daemon runs).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use letterbox::config::Config;
use letterbox::control::{self, Request};
use letterbox::store::Store;

/// Where the appliance keeps its config.
const APPLIANCE_CONFIG: &str = "/etc/letterbox/letterbox.toml";

#[derive(Parser)]
#[command(
    name = "letterbox",
    version,
    about = "A home mail server: SMTP, IMAP and POP3 in one binary"
)]
struct Cli {
    /// Configuration file (default: /etc/letterbox/letterbox.toml if it exists, else built-in host defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server.
    Serve {
        /// If the configuration file has a mistake, write it into `letterbox-error.txt`
        /// beside the file, show fault 1, and run with the appliance defaults instead of
        /// refusing to start (the image uses this: a typo must not brick the box).
        #[arg(long)]
        survive_bad_config: bool,
        /// With --survive-bad-config: the configuration to run with instead of the built-in
        /// appliance defaults (tests use a loopback one).
        #[arg(long, value_name = "FILE", requires = "survive_bad_config")]
        fallback_config: Option<PathBuf>,
    },
    /// Validate the configuration file and print the effective settings.
    CheckConfig {
        /// Print instead the documented file of every key at its default (host defaults:
        /// `letterbox.example.toml`), without reading any configuration.
        #[arg(long)]
        example: bool,
        /// With --example: the appliance's file (`image/letterbox.toml`).
        #[arg(long, requires = "example")]
        appliance: bool,
    },
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage aliases (`@domain` is a catch-all).
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Show services, store, queue and faults.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Press or hold the simulated board's button (simulated board only).
    #[command(subcommand)]
    Button(ButtonCmd),
    /// For the image's scripts: print one setting of the configuration file
    /// (`ssh.enabled`, `ssh.authorized_keys` one per line, `board.name`, `server.data_dir`,
    /// `server.hostname`, `server.domains` one per line). Exits 2 if the file has a mistake.
    #[command(hide = true)]
    ConfigGet {
        /// The dotted key.
        key: String,
    },
    /// Developer tool: make the daemon's health probe fail for SECONDS (the watchdog is
    /// then not fed).
    #[command(hide = true)]
    DebugFailProbe {
        /// How long.
        seconds: f64,
    },
    /// Developer tool: block every worker thread of the daemon's runtime for SECONDS.
    #[command(hide = true)]
    DebugBlockRuntime {
        /// How long.
        seconds: f64,
    },
    /// The outbound queue.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// DKIM signing keys (`letterbox dkim dns` is the old name of `letterbox dns`).
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Print the DNS records to publish for each domain: DKIM keys, SPF, DMARC, the
    /// RFC 6186 SRV records and the autoconfig / autodiscover names.
    Dns {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Import mail into an account from an mbox (Google Takeout too) or a Maildir.
    /// Resumable: run it again after an interruption.
    Import(ImportArgs),
    /// Export an account's mail: one mbox per mailbox, or a Maildir++ tree.
    Export(ExportArgs),
    /// The junk filter that learns from each person.
    #[command(subcommand)]
    Spam(SpamCmd),
    /// Write a backup of everything (one consistent snapshot; the daemon keeps serving),
    /// or with --verify check a backup completely without restoring it.
    Backup {
        /// The backup file.
        file: PathBuf,
        /// Check FILE: decrypt, decompress, every hash and count, and rebuild the store
        /// in a scratch directory to prove it opens.
        #[arg(long)]
        verify: bool,
        /// A file whose first line is the passphrase (default: [backup] passphrase_file).
        /// Without one the backup is not encrypted.
        #[arg(long, value_name = "F")]
        passphrase_file: Option<PathBuf>,
        /// Write an incremental backup on BASE, a full backup in the same directory:
        /// message bodies BASE holds are named, not written. Verify and restore need
        /// BASE beside FILE.
        #[arg(long, value_name = "BASE", conflicts_with = "verify")]
        incremental: Option<PathBuf>,
    },
    /// Restore a backup onto this box (the daemon must be stopped).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace a store that already has mail.
        #[arg(long)]
        force: bool,
        /// A file whose first line is the passphrase (default: [backup] passphrase_file).
        #[arg(long, value_name = "F")]
        passphrase_file: Option<PathBuf>,
    },
    /// Developer tool: run the daemon's scheduled backup now.
    #[command(hide = true)]
    DebugBackupNow,
    /// Developer tool: synthetic durable deliveries straight into a store (used by
    /// the crash-safety test and the throughput benchmark). Prints `ack W S` after
    /// each committed delivery with --print-acks.
    #[command(hide = true)]
    DebugStoreLoad(LoadArgs),
    /// Developer tool: GPIO self-test of the real (Linux) backend. Opens the board file's
    /// lines as the daemon does, drives each LED on and off and reads the level back, reads
    /// the button; prints one line per check, exits 1 on any failure (2 if the board file is
    /// refused or a line cannot be opened).
    #[command(hide = true)]
    DebugGpio(GpioArgs),
}

/// Arguments of `import`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["mbox", "maildir"])))]
struct ImportArgs {
    /// The account.
    address: String,
    /// An mbox file (mboxo, mboxrd, Content-Length, Google Takeout), or a directory of
    /// `*.mbox` files as `letterbox export --mbox` writes them.
    #[arg(long, value_name = "FILE")]
    mbox: Option<PathBuf>,
    /// A Maildir or Maildir++ directory.
    #[arg(long, value_name = "DIR")]
    maildir: Option<PathBuf>,
    /// Put every message into this mailbox (instead of INBOX, the Takeout labels or the
    /// Maildir folders).
    #[arg(long, value_name = "NAME")]
    mailbox: Option<String>,
}

/// Arguments of `export`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["mbox", "maildir"])))]
struct ExportArgs {
    /// The account.
    address: String,
    /// Write one mbox (mboxrd) file per mailbox into this directory.
    #[arg(long, value_name = "DIR")]
    mbox: Option<PathBuf>,
    /// Write a Maildir++ tree into this directory.
    #[arg(long, value_name = "DIR")]
    maildir: Option<PathBuf>,
}

/// Arguments of `debug-gpio`.
#[derive(clap::Args)]
struct GpioArgs {
    /// The board file (see board/rpi4.toml).
    #[arg(long, value_name = "FILE")]
    board: PathBuf,
    /// Drive each LED on and off and read all three back after every write.
    #[arg(long)]
    cycle: bool,
    /// How many on/off rounds with --cycle.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// The level the button must read: `pressed` or `released` (default: only report it).
    #[arg(long, value_name = "STATE", value_parser = ["pressed", "released"])]
    expect_button: Option<String>,
    /// Print `waiting for a button press` and wait up to SECONDS for a press.
    #[arg(long, value_name = "SECONDS")]
    wait_press: Option<f64>,
}

/// Arguments of `debug-store-load`.
#[derive(clap::Args)]
struct LoadArgs {
    /// Data directory of the store.
    #[arg(long)]
    data_dir: PathBuf,
    /// Concurrent writers.
    #[arg(long, default_value_t = 1)]
    writers: u32,
    /// Messages per writer.
    #[arg(long, default_value_t = 1000)]
    messages: u32,
    /// Message size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Print each acknowledgement.
    #[arg(long)]
    print_acks: bool,
    /// Run number, part of every message id.
    #[arg(long, default_value_t = 0)]
    run: u64,
    /// Free-space reserve in bytes below which deliveries are refused (0: none).
    #[arg(long, default_value_t = letterbox::store::MIN_FREE_BYTES)]
    min_free: u64,
}

#[derive(Subcommand)]
enum SpamCmd {
    /// Messages trained, tokens kept, the training queue and the last training.
    Status {
        /// The account's address.
        address: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Train an account's filter on the messages of an mbox.
    Train {
        /// The account's address.
        address: String,
        /// The messages are spam.
        #[arg(long, conflicts_with = "ham", required_unless_present = "ham")]
        spam: bool,
        /// The messages are wanted mail.
        #[arg(long)]
        ham: bool,
        /// The mbox file.
        #[arg(long, value_name = "FILE")]
        mbox: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account (a random password is generated and printed unless --password-stdin).
    Add {
        /// The account's address, e.g. alice@home.arpa.
        address: String,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account and all its mail.
    Del {
        /// The account's address.
        address: String,
    },
    /// Set a new password (generated and printed unless --password-stdin).
    Passwd {
        /// The account's address.
        address: String,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts with their usage and quota.
    List,
    /// Set an account's quota (RFC 9208): the bytes of mail and the number of messages it
    /// may hold. Each is a number ("2GiB", "500M" for storage), "none", or "default"
    /// (`[quota]` in the configuration). Mail over quota is refused, never lost.
    Quota {
        /// The account's address.
        address: String,
        /// Storage limit, e.g. 2GiB.
        #[arg(long, value_name = "SIZE")]
        storage: Option<String>,
        /// Message count limit, e.g. 100000.
        #[arg(long, value_name = "N")]
        messages: Option<String>,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// List queued messages: id, age, sender, recipients with state, next attempt, last error.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Attempt a queued message now.
    Retry {
        /// The queue id (from `queue list`).
        id: u64,
    },
    /// Remove a queued message without delivering it (no bounce is sent).
    Delete {
        /// The queue id (from `queue list`).
        id: u64,
    },
}

#[derive(Subcommand)]
enum DkimCmd {
    /// The same as `letterbox dns` (its former name, kept working).
    Dns {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ButtonCmd {
    /// A short press: acknowledges fault 4 and replays the LEDs.
    Press,
    /// Hold the button for SECONDS; 3 or more is a safe shutdown.
    Hold {
        /// How long to hold it.
        seconds: f64,
    },
}

#[derive(Subcommand)]
enum AliasCmd {
    /// Deliver mail for ALIAS to the account ADDRESS.
    Add {
        /// The alias, or @domain for a catch-all.
        alias: String,
        /// The account's address.
        address: String,
    },
    /// Remove an alias.
    Del {
        /// The alias.
        alias: String,
    },
    /// List aliases.
    List,
}

/// Board files live in `board/` next to the config file (`/etc/letterbox/board/`); the
/// built-in copies are used when there is no such file.
fn board_dir(path: Option<&PathBuf>) -> PathBuf {
    let config = path.cloned().or_else(|| {
        let p = PathBuf::from(APPLIANCE_CONFIG);
        p.exists().then_some(p)
    });
    config
        .as_deref()
        .and_then(std::path::Path::parent)
        .unwrap_or(std::path::Path::new(""))
        .join("board")
}

/// The configuration file in use: `--config`, else the appliance's if it exists.
fn config_path(path: Option<&PathBuf>) -> Option<PathBuf> {
    path.cloned().or_else(|| {
        let p = PathBuf::from(APPLIANCE_CONFIG);
        p.exists().then_some(p)
    })
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    match config_path(path) {
        Some(p) => Config::load(&p).map_err(|e| e.to_string()),
        None => Ok(Config::defaults()),
    }
}

/// `config-get KEY`: one setting, for shell scripts.
fn config_get(cfg: &Config, key: &str) -> Result<Vec<String>, String> {
    Ok(match key {
        "ssh.enabled" => vec![cfg.ssh.enabled.to_string()],
        "ssh.authorized_keys" => cfg.ssh.authorized_keys.clone(),
        "board.name" => vec![cfg.board.name.clone()],
        "server.data_dir" => vec![cfg.server.data_dir.display().to_string()],
        "server.hostname" => vec![cfg.server.hostname.clone()],
        "server.domains" => cfg.server.domains.clone(),
        _ => return Err(format!("config-get: unknown key {key:?}")),
    })
}

fn init_tracing(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    // rustls warns for every client that connects to an IP address ("Illegal SNI
    // extension: ignoring IP address", RFC 6066 §3 forbids IP literals in SNI): mail apps
    // pointed at 127.0.0.1 or the box's LAN address do that, and it is harmless. Its
    // errors still show; `[log] level` or RUST_LOG naming rustls overrides this.
    let level = if cfg.log.level.contains("rustls") {
        cfg.log.level.clone()
    } else {
        format!("{},rustls=error", cfg.log.level)
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn read_password_stdin() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut s)
        .map_err(|e| format!("reading the password: {e}"))?;
    let pw = s.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(pw)
}

/// Sends a request to the daemon, or runs it on the store when none runs.
fn admin(cfg: Config, req: Request, json: bool) -> ExitCode {
    let sock = control::socket_path(&cfg);
    let resp = match control::send(&sock, &req) {
        Ok(Some(r)) => r,
        Ok(None) => {
            let store = match Store::open(&cfg.server.data_dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "letterbox: cannot open the store in {}: {e}",
                        cfg.server.data_dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
            store.set_default_quota(cfg.quota);
            let ctx = control::Ctx {
                store: store.clone(),
                config: Arc::new(cfg),
                daemon: None,
            };
            let r = control::handle(&ctx, req);
            store.close();
            r
        }
        Err(e) => {
            eprintln!(
                "letterbox: cannot reach the daemon at {}: {e}",
                sock.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&resp.data).unwrap_or_default()
        );
    } else if !resp.text.is_empty() {
        if resp.ok {
            println!("{}", resp.text)
        } else {
            eprintln!("letterbox: {}", resp.text)
        }
    }
    if resp.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn open_store(cfg: &Config) -> Result<Store, String> {
    let store = Store::open(&cfg.server.data_dir).map_err(|e| {
        format!(
            "cannot open the store in {}: {e}",
            cfg.server.data_dir.display()
        )
    })?;
    store.set_default_quota(cfg.quota);
    Ok(store)
}

fn import(cfg: Config, a: ImportArgs) -> ExitCode {
    use letterbox::data::import::{self, Options, Source};
    let source = match (a.mbox, a.maildir) {
        (Some(p), _) => Source::Mbox(p),
        (None, Some(p)) => Source::Maildir(p),
        (None, None) => return ExitCode::from(2),
    };
    let opts = Options {
        sock: control::socket_path(&cfg),
        open_store: &|| open_store(&cfg),
        address: a.address.clone(),
        mailbox: a.mailbox,
        max_message: usize::try_from(cfg.limits.max_message_size).unwrap_or(usize::MAX),
        progress: true,
    };
    let started = std::time::Instant::now();
    match import::run(&opts, &source) {
        Ok(t) if t.already && t.messages == 0 => {
            println!("already imported into {}: nothing to do", a.address);
            ExitCode::SUCCESS
        }
        Ok(t) => {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            println!(
                "imported {} messages ({} mailbox entries, {:.1} MB) into {} in {:.1} s ({:.0} messages/s)",
                t.messages,
                t.rows,
                t.bytes as f64 / 1e6,
                a.address,
                secs,
                t.messages as f64 / secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("letterbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn export(cfg: Config, a: ExportArgs) -> ExitCode {
    use letterbox::data::export::Format;
    use std::io::IsTerminal;
    let (dir, format) = match (a.mbox, a.maildir) {
        (Some(d), _) => (d, Format::Mbox),
        (None, Some(d)) => (d, Format::Maildir),
        (None, None) => return ExitCode::from(2),
    };
    // The daemon may write the files: give it an absolute path.
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("letterbox: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let dir = match std::fs::canonicalize(&dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("letterbox: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let pb = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(0);
        if let Ok(s) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} messages {per_sec} eta {eta}",
        ) {
            pb.set_style(s);
        }
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut progress = |done: u64, total: u64| {
        pb.set_length(total);
        pb.set_position(done);
    };
    let req = Request::Export {
        address: a.address.clone(),
        dir: dir.clone(),
        format,
    };
    let sock = control::socket_path(&cfg);
    let resp = match control::send_export(&sock, &req, &mut progress) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => open_store(&cfg).and_then(|store| {
            let ctx = control::Ctx {
                store: store.clone(),
                config: Arc::new(cfg),
                daemon: None,
            };
            let r = control::export(&ctx, &a.address, &dir, format, &mut progress);
            store.close();
            r
        }),
        Err(e) => Err(format!(
            "cannot reach the daemon at {}: {e}",
            sock.display()
        )),
    };
    pb.finish_and_clear();
    match resp {
        Ok(r) if r.ok => {
            println!("{}", r.text);
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("letterbox: {}", r.text);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("letterbox: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The passphrase of `backup` and `restore`: `--passphrase-file`, else `[backup]
/// passphrase_file`; an unreadable file is reported here and ends the command (exit 2).
fn backup_passphrase(
    cfg: &Config,
    file: Option<PathBuf>,
) -> Result<Option<letterbox::data::backup::Passphrase>, ExitCode> {
    file.or_else(|| cfg.backup.passphrase_file.clone())
        .map(|p| letterbox::data::backup::Passphrase::from_file(&p))
        .transpose()
        .map_err(|e| {
            eprintln!("letterbox: {e}");
            ExitCode::from(2)
        })
}

/// `letterbox backup FILE` (through the daemon when one runs) and `backup --verify FILE`.
fn backup_cmd(
    cfg: Config,
    config_path: Option<PathBuf>,
    file: PathBuf,
    verify: bool,
    passphrase_file: Option<PathBuf>,
    incremental: Option<PathBuf>,
) -> ExitCode {
    use letterbox::data::backup;
    let pass = match backup_passphrase(&cfg, passphrase_file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if verify {
        let scratch = if cfg.server.data_dir.is_dir() {
            cfg.server.data_dir.clone()
        } else {
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."))
                .to_path_buf()
        };
        return match backup::verify(&file, pass.as_ref(), &scratch) {
            Ok(r) => {
                println!("{}: OK: {}", file.display(), r.line());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("letterbox: {}: {e}", file.display());
                ExitCode::FAILURE
            }
        };
    }
    if pass.is_none() {
        eprintln!("letterbox: {}", backup::UNENCRYPTED_WARNING);
    }
    let path = match std::path::absolute(&file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("letterbox: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let base = match incremental.map(std::path::absolute).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("letterbox: --incremental: {e}");
            return ExitCode::from(2);
        }
    };
    let config_path = config_path.and_then(|p| std::path::absolute(p).ok());
    admin(
        cfg,
        Request::Backup {
            path,
            passphrase: pass,
            config_path,
            base,
        },
        false,
    )
}

/// `letterbox restore FILE [--force]`.
fn restore_cmd(
    cfg: Config,
    config_path: Option<PathBuf>,
    file: PathBuf,
    force: bool,
    passphrase_file: Option<PathBuf>,
) -> ExitCode {
    let pass = match backup_passphrase(&cfg, passphrase_file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match letterbox::data::backup::restore(
        &file,
        pass.as_ref(),
        &cfg,
        config_path.as_deref(),
        force,
    ) {
        Ok(r) => {
            println!(
                "restored {} into {}: {}",
                file.display(),
                cfg.server.data_dir.display(),
                r.verify.line()
            );
            if let Some(p) = &r.previous {
                println!("the replaced database was kept as {}", p.display());
            }
            for l in &r.files {
                println!("  {l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("letterbox: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn debug_gpio(a: GpioArgs) -> ExitCode {
    use letterbox::hw::{self, LinuxBoard, selftest};
    use std::time::{Duration, Instant};
    let text = match std::fs::read_to_string(&a.board) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("letterbox: cannot read {}: {e}", a.board.display());
            return ExitCode::from(2);
        }
    };
    let pins = match hw::parse_board(&text, &a.board.display().to_string()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("letterbox: {e}");
            return ExitCode::from(2);
        }
    };
    println!("board {}", selftest::describe(&pins));
    let mut board = match LinuxBoard::open(&pins, Instant::now()) {
        Ok(b) => b,
        Err(e) => {
            println!("FAIL open: {e}");
            return ExitCode::from(2);
        }
    };
    println!("ok   open: {} lines requested", board.chip().display());
    let mut failed = 0;
    let mut report = |c: selftest::Check| {
        failed += usize::from(!c.ok);
        println!("{c}");
    };
    let pins = board.pins().clone();
    let panel = board.panel_mut();
    if a.cycle {
        selftest::led_cycle(panel, &pins, a.rounds, Instant::now(), &mut report);
    }
    let expect = a.expect_button.as_deref().map(|s| s == "pressed");
    report(selftest::button_level(panel, &pins, expect));
    if let Some(secs) = a.wait_press {
        let timeout = Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO);
        println!("waiting for a button press ({secs} s)");
        report(selftest::wait_press(
            panel,
            timeout,
            &mut Instant::now,
            &mut std::thread::sleep,
        ));
    }
    if failed == 0 {
        println!("debug-gpio: all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("debug-gpio: {failed} check(s) failed");
        ExitCode::FAILURE
    }
}

fn debug_store_load(a: LoadArgs) -> ExitCode {
    let LoadArgs {
        data_dir,
        writers,
        messages,
        size,
        print_acks,
        run: run_id,
        min_free,
    } = a;
    let dir = data_dir.as_path();
    use letterbox::store::load;
    use std::io::Write;
    let store = match Store::open_with(dir, min_free) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("letterbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let on_ack: Arc<dyn Fn(u32, u32) + Send + Sync> = Arc::new(move |w, s| {
        if print_acks && let Ok(mut o) = out.lock() {
            let _ = writeln!(o, "ack {w} {s}");
            let _ = o.flush();
        }
    });
    match load::run(&store, writers, messages, size, run_id, on_ack) {
        Ok(r) => {
            store.close();
            println!(
                "delivered {} messages of {size} bytes with {writers} writers in {:.3} s: {:.0} msg/s",
                r.delivered,
                r.elapsed.as_secs_f64(),
                r.delivered as f64 / r.elapsed.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("letterbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line: what is wrong (clap's own text, without the usage block).
            let text = e.to_string();
            let what: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let what = what.join(" ");
            eprintln!(
                "letterbox: {} (see letterbox --help)",
                what.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig {
        example: true,
        appliance,
    } = cli.command
    {
        let flavor = if appliance {
            letterbox::config::Flavor::Appliance
        } else {
            letterbox::config::Flavor::Host
        };
        print!("{}", letterbox::config::example(flavor));
        return ExitCode::SUCCESS;
    }
    let (survive, fallback) = match &cli.command {
        Command::Serve {
            survive_bad_config,
            fallback_config,
        } => (*survive_bad_config, fallback_config.clone()),
        _ => (false, None),
    };
    let mut config_error = None;
    let cfg = match load_config(cli.config.as_ref()) {
        Ok(c) => {
            if survive && let Some(p) = config_path(cli.config.as_ref()) {
                letterbox::app::clear_config_error(&p);
            }
            c
        }
        Err(e) if survive => {
            eprintln!("letterbox: {e}; starting with the appliance defaults (fault 1)");
            if let Some(p) = config_path(cli.config.as_ref()).or_else(|| cli.config.clone()) {
                letterbox::app::write_config_error(&p, &e);
            }
            config_error = Some(e);
            match fallback.as_deref().map(Config::load) {
                None => Config::appliance_fallback(),
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    eprintln!("letterbox: fallback configuration: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Err(e) => {
            // A daemon started with --survive-bad-config runs on the appliance defaults:
            // admin commands reach it there, so `letterbox status` still shows the fault.
            let fallback = Config::appliance_fallback();
            let admin = !matches!(
                cli.command,
                Command::Serve { .. } | Command::CheckConfig { .. } | Command::ConfigGet { .. }
            );
            if admin && control::socket_path(&fallback).exists() {
                eprintln!("letterbox: {e}; using the daemon that runs with the defaults");
                fallback
            } else {
                eprintln!("letterbox: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let pw = |stdin: bool| {
        if stdin {
            read_password_stdin().map(Some)
        } else {
            Ok(None)
        }
    };
    let req = match cli.command {
        Command::Serve { .. } => {
            letterbox::mem::tune();
            init_tracing(&cfg);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("letterbox: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = letterbox::app::ServeOptions {
                board_dir: board_dir(cli.config.as_ref()),
                config_path: config_path(cli.config.as_ref()),
                config_error,
            };
            let code = rt.block_on(letterbox::app::run(Arc::new(cfg), &opts));
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            return ExitCode::from(code as u8);
        }
        Command::CheckConfig { .. } => {
            println!(
                "{}: OK",
                cli.config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in defaults".into())
            );
            println!(
                "domains: {}; hostname {}; data_dir {}",
                cfg.server.domains.join(", "),
                cfg.server.hostname,
                cfg.server.data_dir.display()
            );
            for (name, addr) in cfg.listen.services() {
                println!(
                    "  {name:<12} {}",
                    addr.map(|a| a.to_string())
                        .unwrap_or_else(|| "disabled".into())
                );
            }
            return ExitCode::SUCCESS;
        }
        Command::User(UserCmd::Add {
            address,
            password_stdin,
        }) => match pw(password_stdin) {
            Ok(password) => Request::UserAdd { address, password },
            Err(e) => {
                eprintln!("letterbox: {e}");
                return ExitCode::from(2);
            }
        },
        Command::User(UserCmd::Passwd {
            address,
            password_stdin,
        }) => match pw(password_stdin) {
            Ok(password) => Request::UserPasswd { address, password },
            Err(e) => {
                eprintln!("letterbox: {e}");
                return ExitCode::from(2);
            }
        },
        Command::User(UserCmd::Del { address }) => Request::UserDel { address },
        Command::User(UserCmd::List) => Request::UserList,
        Command::User(UserCmd::Quota {
            address,
            storage,
            messages,
        }) => Request::UserQuota {
            address,
            storage,
            messages,
        },
        Command::Alias(AliasCmd::Add { alias, address }) => Request::AliasAdd { alias, address },
        Command::Alias(AliasCmd::Del { alias }) => Request::AliasDel { alias },
        Command::Alias(AliasCmd::List) => Request::AliasList,
        Command::Status { json } => return admin(cfg, Request::Status, json),
        Command::Button(ButtonCmd::Press) => Request::ButtonPress,
        Command::Button(ButtonCmd::Hold { seconds }) => Request::ButtonHold { seconds },
        Command::DebugFailProbe { seconds } => Request::DebugFailProbe { seconds },
        Command::DebugBlockRuntime { seconds } => Request::DebugBlockRuntime { seconds },
        Command::Queue(QueueCmd::List { json }) => return admin(cfg, Request::QueueList, json),
        Command::Queue(QueueCmd::Retry { id }) => Request::QueueRetry { id },
        Command::Queue(QueueCmd::Delete { id }) => Request::QueueDelete { id },
        Command::Dkim(DkimCmd::Dns { json }) | Command::Dns { json } => {
            return admin(cfg, Request::DkimDns, json);
        }
        Command::ConfigGet { key } => match config_get(&cfg, &key) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("letterbox: {e}");
                return ExitCode::from(2);
            }
        },
        Command::Backup {
            file,
            verify,
            passphrase_file,
            incremental,
        } => {
            let config_path = config_path(cli.config.as_ref());
            return backup_cmd(cfg, config_path, file, verify, passphrase_file, incremental);
        }
        Command::Restore {
            file,
            force,
            passphrase_file,
        } => {
            let config_path = config_path(cli.config.as_ref());
            return restore_cmd(cfg, config_path, file, force, passphrase_file);
        }
        Command::DebugBackupNow => Request::DebugBackupNow,
        Command::DebugStoreLoad(args) => return debug_store_load(args),
        Command::DebugGpio(args) => return debug_gpio(args),
        Command::Import(args) => return import(cfg, args),
        Command::Export(args) => return export(cfg, args),
        Command::Spam(SpamCmd::Status { address, json }) => {
            return admin(cfg, Request::SpamStatus { address }, json);
        }
        Command::Spam(SpamCmd::Train {
            address,
            spam,
            ham: _,
            mbox,
        }) => match std::path::absolute(&mbox) {
            Ok(mbox) => Request::SpamTrain {
                address,
                spam,
                mbox,
            },
            Err(e) => {
                eprintln!("letterbox: {}: {e}", mbox.display());
                return ExitCode::from(2);
            }
        },
    };
    admin(cfg, req, false)
}

//! Administration requests (`letterbox user ...`, `alias ...`, `status`, `queue ...`,
//! `dkim dns`), handled in
//! one place whether they come over the daemon's Unix socket or run against the
//! store directly when no daemon is running (SPEC §4).
//!
//! Wire format: one JSON [`Request`] per line from the client, one JSON [`Response`]
//! per line back. The socket is `data_dir/control.sock`, mode 0600.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::auth;
use crate::config::Config;
use crate::hw::supervisor::Hw;
use crate::store::{self, Op, Store};

/// Socket file name inside `data_dir`.
pub const SOCKET: &str = "control.sock";
/// Requests longer than this are refused (bounded memory).
const MAX_REQUEST: usize = 64 * 1024;

/// One admin request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Create an account; a random password is generated when none is given.
    UserAdd {
        /// Primary address.
        address: String,
        /// Initial password.
        password: Option<String>,
    },
    /// Delete an account and its mail.
    UserDel {
        /// Primary address.
        address: String,
    },
    /// Change a password (random when none given).
    UserPasswd {
        /// Primary address.
        address: String,
        /// New password.
        password: Option<String>,
    },
    /// List accounts.
    UserList,
    /// Set an account's quota (RFC 9208 STORAGE and MESSAGE); an absent limit is left as
    /// it is. Each limit is a number (a size such as "2GiB" for storage), "none" (no
    /// limit) or "default" (`[quota]`).
    UserQuota {
        /// Primary address.
        address: String,
        /// Bytes of mail.
        storage: Option<String>,
        /// Messages.
        messages: Option<String>,
    },
    /// Add an alias or `@domain` catch-all.
    AliasAdd {
        /// The alias.
        alias: String,
        /// The account's address.
        address: String,
    },
    /// Remove an alias.
    AliasDel {
        /// The alias.
        alias: String,
    },
    /// List aliases.
    AliasList,
    /// Daemon and store status.
    Status,
    /// A short press of the simulated button (`letterbox button press`).
    ButtonPress,
    /// Holds the simulated button (`letterbox button hold SECONDS`).
    ButtonHold {
        /// How long, in seconds.
        seconds: f64,
    },
    /// Debug (hidden): the health probe fails for this long, so the watchdog is not fed.
    DebugFailProbe {
        /// How long, in seconds.
        seconds: f64,
    },
    /// Debug (hidden): blocks every runtime worker for this long (a wedged runtime).
    DebugBlockRuntime {
        /// How long, in seconds.
        seconds: f64,
    },
    /// The outbound queue.
    QueueList,
    /// Make a queued message due now.
    QueueRetry {
        /// Queue id.
        id: u64,
    },
    /// Remove a queued message (no bounce).
    QueueDelete {
        /// Queue id.
        id: u64,
    },
    /// The DNS records to publish (DKIM keys, SPF, DMARC) for every domain.
    DkimDns,
    /// Opens an import stream (`letterbox import`): batches follow on the same
    /// connection (see [`crate::data::import`]).
    Import {
        /// The account.
        address: String,
        /// The source key (kind and canonical path).
        source: String,
    },
    /// `letterbox export`: the daemon writes the files and reports progress lines
    /// `{"done":N,"total":M}` before the final response.
    Export {
        /// The account.
        address: String,
        /// Absolute output directory.
        dir: PathBuf,
        /// mbox or Maildir.
        format: crate::data::export::Format,
    },
    /// Write a backup of one consistent snapshot to `path` (`letterbox backup FILE`): the
    /// daemon writes the file itself, so nothing large crosses the socket.
    Backup {
        /// Absolute path of the file to write.
        path: PathBuf,
        /// Encrypts the backup when present (never logged).
        passphrase: Option<crate::data::backup::Passphrase>,
        /// The CLI's config file (the daemon uses the one it was started with).
        config_path: Option<PathBuf>,
        /// Absolute path of a full backup to build on (`--incremental BASE`).
        #[serde(default)]
        base: Option<PathBuf>,
    },
    /// Debug (hidden): run the scheduled backup now (tests: no waiting for the clock).
    DebugBackupNow,
    /// `letterbox spam status ADDRESS`: the learning filter's counts.
    SpamStatus {
        /// The account.
        address: String,
    },
    /// `letterbox spam train ADDRESS --spam|--ham --mbox FILE`: the daemon reads the file
    /// itself (src/spam/learn.rs), so nothing large crosses the socket.
    SpamTrain {
        /// The account.
        address: String,
        /// Spam (true) or ham.
        spam: bool,
        /// Absolute path of the mbox.
        mbox: PathBuf,
    },
}

impl Request {
    /// How long the client waits for the answer.
    pub fn timeout(&self) -> Duration {
        match self {
            Request::Backup { .. } | Request::DebugBackupNow => {
                crate::data::backup::REQUEST_TIMEOUT
            }
            // Between two progress lines of an export.
            Request::Export { .. } => Duration::from_secs(600),
            Request::SpamTrain { .. } => Duration::from_secs(3600),
            _ => Duration::from_secs(120),
        }
    }
}

/// The answer to a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// Success.
    pub ok: bool,
    /// Human-readable text (the CLI prints it).
    pub text: String,
    /// Structured data (`--json`).
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    fn ok(text: impl Into<String>, data: serde_json::Value) -> Response {
        Response {
            ok: true,
            text: text.into(),
            data,
        }
    }
    fn err(text: impl Into<String>) -> Response {
        Response {
            ok: false,
            text: text.into(),
            data: serde_json::Value::Null,
        }
    }
}

/// What the running daemon contributes to `status`.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// When serve started.
    pub started: Instant,
    /// Listening services: (name, address).
    pub services: Vec<(String, String)>,
    /// Certificate in use.
    pub cert: String,
    /// The TLS state (fingerprints, expiry, renewal) for `status`.
    pub tls: Option<crate::tls::Tls>,
    /// The board, the health model and the watchdog.
    pub hw: Hw,
    /// `[[fetch]]`: how pulling from each remote account goes.
    pub fetch: crate::fetch::Board,
    /// The config file the daemon was started with (backups hold it).
    pub config_path: Option<PathBuf>,
    /// The backups taken, for `status` (and fault 6).
    pub backups: crate::data::backup::schedule::Tracker,
    /// The spam counts of the last day.
    pub spam_counts: Arc<crate::spam::Counts>,
}

/// Everything a request may touch.
#[derive(Clone)]
pub struct Ctx {
    /// The store.
    pub store: Store,
    /// The configuration.
    pub config: Arc<Config>,
    /// Present when running inside the daemon.
    pub daemon: Option<Arc<DaemonInfo>>,
}

fn check_domain(cfg: &Config, address: &str) -> Result<(), String> {
    let norm = store::normalize_address(address).map_err(|e| e.to_string())?;
    let domain = store::split_address(&norm).map(|(_, d)| d).unwrap_or("");
    if cfg.is_local_domain(domain) {
        Ok(())
    } else {
        Err(format!(
            "{domain} is not one of this server's domains ({}); add it to [server] domains",
            cfg.server.domains.join(", ")
        ))
    }
}

fn check_password(pw: &str) -> Result<(), String> {
    if pw.chars().count() < 8 {
        return Err("the password must have at least 8 characters".into());
    }
    if pw.len() > 1024 || pw.chars().any(char::is_control) {
        return Err("the password must be at most 1024 bytes, without control characters".into());
    }
    Ok(())
}

/// Handles one request (blocking: argon2 and redb).
pub fn handle(ctx: &Ctx, req: Request) -> Response {
    match handle_inner(ctx, req) {
        Ok(r) => r,
        Err(e) => Response::err(e),
    }
}

fn handle_inner(ctx: &Ctx, req: Request) -> Result<Response, String> {
    let s = &ctx.store;
    let e = |e: store::Error| e.to_string();
    match req {
        Request::UserAdd { address, password } => {
            check_domain(&ctx.config, &address)?;
            let generated = password.is_none();
            let pw = password.unwrap_or_else(auth::random_password);
            check_password(&pw)?;
            let hash = auth::hash_password(&pw).map_err(e)?;
            s.write(Op::CreateAccount {
                address: address.clone(),
                password_hash: hash,
            })
            .map_err(e)?;
            let text = if generated {
                format!("created {address} with password: {pw}")
            } else {
                format!("created {address}")
            };
            let data = serde_json::json!({ "address": address, "password": if generated { Some(pw) } else { None } });
            Ok(Response::ok(text, data))
        }
        Request::UserDel { address } => {
            s.write(Op::DeleteAccount {
                address: address.clone(),
            })
            .map_err(e)?;
            Ok(Response::ok(
                format!("deleted {address} and its mail"),
                serde_json::Value::Null,
            ))
        }
        Request::UserPasswd { address, password } => {
            let generated = password.is_none();
            let pw = password.unwrap_or_else(auth::random_password);
            check_password(&pw)?;
            let hash = auth::hash_password(&pw).map_err(e)?;
            s.write(Op::SetPassword {
                address: address.clone(),
                password_hash: hash,
            })
            .map_err(e)?;
            let text = if generated {
                format!("new password for {address}: {pw}")
            } else {
                format!("password of {address} changed")
            };
            Ok(Response::ok(text, serde_json::Value::Null))
        }
        Request::UserList => {
            let accts = s.read(|r| r.accounts()).map_err(e)?;
            let mut rows = Vec::new();
            let mut text = String::new();
            for a in accts {
                let (usage, setting) = s
                    .read(|r| Ok((r.usage(a.id)?, r.quota_setting(a.id)?)))
                    .map_err(e)?;
                let quota = setting.effective(ctx.config.quota);
                text.push_str(&format!(
                    "{}\t{} messages{}\t{}{}\n",
                    a.address,
                    usage.messages,
                    quota
                        .messages
                        .map(|m| format!(" of {m}"))
                        .unwrap_or_default(),
                    human_bytes(usage.bytes),
                    quota
                        .storage
                        .map(|b| format!(" of {}", human_bytes(b)))
                        .unwrap_or_default(),
                ));
                rows.push(serde_json::json!({
                    "address": a.address,
                    "messages": usage.messages,
                    "bytes": usage.bytes,
                    "quota": { "storage": quota.storage, "messages": quota.messages },
                }));
            }
            Ok(Response::ok(
                text.trim_end().to_string(),
                serde_json::Value::Array(rows),
            ))
        }
        Request::UserQuota {
            address,
            storage,
            messages,
        } => {
            let storage = storage
                .as_deref()
                .map(|v| parse_limit(v, crate::config::parse_size))
                .transpose()?;
            let messages = messages
                .as_deref()
                .map(|v| {
                    parse_limit(v, |n| {
                        n.trim()
                            .parse::<u64>()
                            .map_err(|_| format!("invalid message count {n:?}"))
                    })
                })
                .transpose()?;
            if storage.is_none() && messages.is_none() {
                return Err("give --storage and/or --messages".into());
            }
            s.write(Op::SetQuota {
                address: address.clone(),
                storage,
                messages,
            })
            .map_err(e)?;
            let account = s
                .read(|r| r.account_by_login(&address))
                .map_err(e)?
                .ok_or_else(|| format!("{address} not found"))?;
            let quota = s
                .read(|r| r.quota_setting(account.id))
                .map_err(e)?
                .effective(ctx.config.quota);
            let show = |v: Option<String>| v.unwrap_or_else(|| "no limit".into());
            Ok(Response::ok(
                format!(
                    "quota of {address}: storage {}, messages {}",
                    show(quota.storage.map(human_bytes)),
                    show(quota.messages.map(|m| m.to_string()))
                ),
                serde_json::json!({ "storage": quota.storage, "messages": quota.messages }),
            ))
        }
        Request::AliasAdd { alias, address } => {
            check_domain(&ctx.config, &alias)?;
            s.write(Op::AddAlias {
                alias: alias.clone(),
                target: address.clone(),
            })
            .map_err(e)?;
            Ok(Response::ok(
                format!("{alias} -> {address}"),
                serde_json::Value::Null,
            ))
        }
        Request::AliasDel { alias } => {
            s.write(Op::DeleteAlias {
                alias: alias.clone(),
            })
            .map_err(e)?;
            Ok(Response::ok(
                format!("removed {alias}"),
                serde_json::Value::Null,
            ))
        }
        Request::AliasList => {
            let list = s.read(|r| r.aliases()).map_err(e)?;
            let text = list
                .iter()
                .map(|(a, t)| format!("{a}\t-> {t}"))
                .collect::<Vec<_>>()
                .join("\n");
            let data = list
                .iter()
                .map(|(a, t)| serde_json::json!({ "alias": a, "address": t }))
                .collect();
            Ok(Response::ok(text, serde_json::Value::Array(data)))
        }
        Request::Status => status(ctx),
        Request::SpamStatus { address } => {
            let account = s
                .read(|r| r.account_by_login(&address))
                .map_err(e)?
                .ok_or_else(|| format!("{address} not found"))?;
            let st = s.read(|r| r.spam_state(account.id)).map_err(e)?;
            let bytes = s.read(|r| r.spam_stats_bytes()).map_err(e)?;
            let mut data = serde_json::to_value(&st).unwrap_or_default();
            data["all_accounts_stats_bytes"] = bytes.into();
            Ok(Response::ok(
                format!(
                    "{}\nthe statistics of all accounts take {} KiB",
                    crate::spam::learn::status_text(&address, &st, &ctx.config.spam_filter),
                    bytes / 1024
                ),
                data,
            ))
        }
        Request::SpamTrain {
            address,
            spam,
            mbox,
        } => {
            let account = s
                .read(|r| r.account_by_login(&address))
                .map_err(e)?
                .ok_or_else(|| format!("{address} not found"))?;
            let class = if spam {
                store::spam::Class::Spam
            } else {
                store::spam::Class::Ham
            };
            let n = crate::spam::learn::train_mbox(
                s,
                account.id,
                class,
                &mbox,
                ctx.config.limits.max_message_size,
            )?;
            Ok(Response::ok(
                format!(
                    "trained {n} messages of {} as {} for {address}",
                    mbox.display(),
                    if spam { "spam" } else { "ham" }
                ),
                serde_json::json!({ "trained": n }),
            ))
        }
        Request::ButtonPress => daemon_hw(ctx)?.press().map(text_only),
        Request::ButtonHold { seconds } => daemon_hw(ctx)?.hold(seconds).map(text_only),
        Request::DebugFailProbe { seconds } => {
            daemon_hw(ctx)?.fail_probe_for(seconds).map(text_only)
        }
        Request::DebugBlockRuntime { seconds } => {
            daemon_hw(ctx)?.block_runtime(seconds).map(text_only)
        }
        Request::QueueList => queue_list(ctx),
        Request::QueueRetry { id } => {
            let mut item = s
                .read(|r| r.queue_item(id))
                .map_err(e)?
                .ok_or_else(|| format!("queue item {id} not found"))?;
            item.next_attempt = store::now_unix();
            s.write(Op::QueueUpdate(item)).map_err(e)?;
            Ok(Response::ok(
                format!("queue item {id} will be attempted now"),
                serde_json::Value::Null,
            ))
        }
        Request::QueueDelete { id } => {
            s.write(Op::QueueDelete(id)).map_err(e)?;
            Ok(Response::ok(
                format!("queue item {id} deleted"),
                serde_json::Value::Null,
            ))
        }
        Request::DkimDns => dkim_dns(ctx),
        Request::Import { .. } => Err("import runs as a stream (letterbox import)".into()),
        Request::Export {
            address,
            dir,
            format,
        } => export(ctx, &address, &dir, format, &mut |_, _| {}),
        Request::Backup {
            path,
            passphrase,
            config_path,
            base,
        } => backup(
            ctx,
            &path,
            passphrase.as_ref(),
            config_path,
            base.as_deref(),
        ),
        Request::DebugBackupNow => {
            let d = ctx
                .daemon
                .as_ref()
                .ok_or("no daemon is running (the schedule is the daemon's)")?;
            let now = store::now_unix();
            let r = crate::data::backup::schedule::run_once(
                &ctx.store,
                &ctx.config,
                d.config_path.as_deref(),
                &d.backups,
                now,
            );
            d.hw.set_fault(
                crate::hw::health::FaultClass::Backup,
                d.backups.fault(ctx.config.backup.schedule.is_some(), now),
            );
            r.map(text_only)
        }
    }
}

/// `letterbox export` where the store is open; `progress(done, total)` per message.
pub fn export(
    ctx: &Ctx,
    address: &str,
    dir: &Path,
    format: crate::data::export::Format,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Response, String> {
    let t = crate::data::export::run(&ctx.store, address, dir, format, progress)?;
    Ok(Response::ok(
        format!(
            "exported {} messages ({}) in {} mailboxes of {address} to {}{}",
            t.messages,
            human_bytes(t.bytes),
            t.mailboxes,
            dir.display(),
            if t.dropped_keywords > 0 {
                format!(
                    "; {} keywords left out (a Maildir folder holds 26 at most)",
                    t.dropped_keywords
                )
            } else {
                String::new()
            }
        ),
        serde_json::to_value(t).unwrap_or_default(),
    ))
}

fn text_only(text: String) -> Response {
    Response::ok(text, serde_json::Value::Null)
}

/// The running daemon's board, or why there is none.
fn daemon_hw(ctx: &Ctx) -> Result<&Hw, String> {
    ctx.daemon.as_ref().map(|d| &d.hw).ok_or_else(|| {
        "no daemon is running (the board only exists while `letterbox serve` runs)".to_owned()
    })
}

fn rcpt_state(st: &store::RcptState) -> String {
    match st {
        store::RcptState::Pending => "pending".into(),
        store::RcptState::Delivered => "delivered".into(),
        store::RcptState::Failed(why) => format!("failed: {why}"),
    }
}

/// `letterbox queue list`: id, age, sender, recipients with state, next attempt, last error.
fn queue_list(ctx: &Ctx) -> Result<Response, String> {
    let items = ctx.store.read(|r| r.queue()).map_err(|e| e.to_string())?;
    let now = store::now_unix();
    if items.is_empty() {
        return Ok(Response::ok(
            "the outbound queue is empty",
            serde_json::Value::Array(Vec::new()),
        ));
    }
    let mut lines = Vec::new();
    let mut data = Vec::new();
    for it in &items {
        let from = if it.mail_from.is_empty() {
            "<>"
        } else {
            it.mail_from.as_str()
        };
        let next = it.next_attempt - now;
        lines.push(format!(
            "{}\tage {}\tfrom {from}\tattempts {}\tnext {}",
            it.id,
            human_age(now - it.created),
            it.attempts,
            if next <= 0 {
                "now".to_string()
            } else {
                format!("in {}", human_age(next))
            }
        ));
        for (r, st) in &it.rcpts {
            lines.push(format!("\t{r}: {}", rcpt_state(st)));
        }
        if let Some(err) = &it.last_error {
            lines.push(format!("\tlast error: {err}"));
        }
        data.push(serde_json::json!({
            "id": it.id,
            "age_s": now - it.created,
            "mail_from": it.mail_from,
            "rcpts": it.rcpts.iter().map(|(r, st)| serde_json::json!({"rcpt": r, "state": rcpt_state(st)})).collect::<Vec<_>>(),
            "attempts": it.attempts,
            "next_attempt": it.next_attempt,
            "last_error": it.last_error,
        }));
    }
    Ok(Response::ok(
        lines.join("\n"),
        serde_json::Value::Array(data),
    ))
}

/// `letterbox dns` (and its old name `letterbox dkim dns`): per domain, the DKIM key records,
/// SPF and DMARC suggestions, then the records that let mail apps find the services (RFC 6186
/// SRV, autoconfig / autodiscover; [`crate::web::autoconfig::dns_records`]). Generates the
/// keys of a domain that has none yet (a store never served).
fn dkim_dns(ctx: &Ctx) -> Result<Response, String> {
    crate::queue::ensure_dkim_keys(&ctx.store, &ctx.config)?;
    let relay = ctx.config.relay.as_ref().map(|r| r.host.as_str());
    let mut lines = Vec::new();
    let mut data = Vec::new();
    for domain in &ctx.config.server.domains {
        let keys = ctx
            .store
            .read(|r| r.dkim_keys(domain))
            .map_err(|e| e.to_string())?;
        lines.push(format!("; {domain}"));
        let mut records = crate::mail::sign::dns_records(domain, &keys, relay);
        records.extend(crate::web::autoconfig::dns_records(&ctx.config, domain));
        for rec in records {
            let value = match rec.kind {
                "TXT" => crate::mail::sign::zone_text(&rec.value),
                _ => rec.value.clone(),
            };
            lines.push(format!("{}.\tIN\t{}\t{value}", rec.name, rec.kind));
            data.push(serde_json::json!({"domain": domain, "name": rec.name, "type": rec.kind, "value": rec.value}));
        }
    }
    Ok(Response::ok(
        lines.join("\n"),
        serde_json::Value::Array(data),
    ))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub(crate) fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// A quota limit as written on the command line: a number, `none` or `default`.
fn parse_limit(
    v: &str,
    number: impl Fn(&str) -> Result<u64, String>,
) -> Result<store::Limit, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "none" | "unlimited" => Ok(store::Limit::Unlimited),
        "default" => Ok(store::Limit::Default),
        _ => match number(v)? {
            0 => Err("a limit must be at least 1 (or \"none\")".into()),
            n => Ok(store::Limit::Max(n)),
        },
    }
}

/// `letterbox backup FILE`: one consistent snapshot, written by whoever holds the store.
fn backup(
    ctx: &Ctx,
    path: &Path,
    pass: Option<&crate::data::backup::Passphrase>,
    config_path: Option<PathBuf>,
    base: Option<&Path>,
) -> Result<Response, String> {
    let config_path = match &ctx.daemon {
        Some(d) => d.config_path.clone(),
        None => config_path,
    };
    let r = crate::data::backup::write_backup(
        &ctx.store,
        &ctx.config,
        config_path.as_deref(),
        path,
        pass,
        base,
    );
    if let Some(d) = &ctx.daemon {
        d.backups.record(crate::data::backup::schedule::LastBackup {
            at: store::now_unix(),
            file: path.to_path_buf(),
            bytes: r.as_ref().map(|r| r.bytes).unwrap_or(0),
            scheduled: false,
            error: r.as_ref().err().cloned(),
        });
    }
    let r = r.map_err(|e| format!("backup {}: {e}", path.display()))?;
    Ok(Response::ok(
        format!(
            "wrote {} ({} bytes, {} tables, {} rows, {} files, {}{}) in {:.1} s",
            r.path.display(),
            r.bytes,
            r.tables,
            r.rows,
            r.files,
            if r.encrypted {
                "encrypted"
            } else {
                "NOT encrypted"
            },
            match &r.base {
                Some(b) => format!(", incremental on {b}: {} bodies left to it", r.base_blobs),
                None => String::new(),
            },
            r.seconds
        ),
        serde_json::to_value(&r).unwrap_or_default(),
    ))
}

fn status(ctx: &Ctx) -> Result<Response, String> {
    let file_bytes = std::fs::metadata(ctx.store.path())
        .map(|m| m.len())
        .unwrap_or(0);
    let stats = ctx
        .store
        .read(|r| r.stats(file_bytes))
        .map_err(|e| e.to_string())?;
    let free = ctx.store.free_space();
    let now = store::now_unix();
    let mut lines = Vec::new();
    let mut board = serde_json::Value::Null;
    let daemon = match &ctx.daemon {
        Some(d) => {
            lines.push(format!(
                "daemon: running for {}",
                human_age(d.started.elapsed().as_secs() as i64)
            ));
            for (name, addr) in &d.services {
                lines.push(format!("  {name:<12} {addr}"));
            }
            lines.push(format!("certificate: {}", d.cert));
            lines.extend(d.tls.iter().flat_map(|t| t.status_lines()));
            lines.extend(d.hw.status_lines());
            lines.extend(d.fetch.status_lines(now));
            lines.extend(d.backups.status_lines(&ctx.config, store::now_unix()));
            lines.push(d.spam_counts.status_line(now));
            board = d.hw.status_json();
            serde_json::json!({
                "running": true,
                "uptime_s": d.started.elapsed().as_secs(),
                "services": d.services.iter().map(|(n, a)| serde_json::json!({"name": n, "addr": a})).collect::<Vec<_>>(),
                "certificate": d.cert,
                "tls": d.tls.as_ref().map(|t| t.status_json()),
                "fetch": d.fetch.entries(),
                "backup": d.backups.status_json(&ctx.config, store::now_unix()),
                "spam": d.spam_counts.status_json(now),
            })
        }
        None => {
            lines.push("daemon: not running".into());
            serde_json::json!({ "running": false })
        }
    };
    lines.push(format!(
        "store: {} accounts, {} messages, {} distinct bodies ({}), file {}",
        stats.accounts,
        stats.messages,
        stats.blobs,
        human_bytes(stats.blob_bytes),
        human_bytes(stats.file_bytes)
    ));
    if let Some(f) = free {
        let low = f < store::MIN_FREE_BYTES * 2;
        lines.push(format!(
            "free space: {}{}",
            human_bytes(f),
            if low {
                " (LOW: new mail is refused below 32 MiB)"
            } else {
                ""
            }
        ));
    }
    lines.push(format!("unseen in INBOXes: {}", stats.inbox_unseen));
    // Quotas (RFC 9208): every account with a limit, and how full it is.
    let mut quotas = Vec::new();
    for a in ctx
        .store
        .read(|r| r.accounts())
        .map_err(|e| e.to_string())?
    {
        let (usage, setting) = ctx
            .store
            .read(|r| Ok((r.usage(a.id)?, r.quota_setting(a.id)?)))
            .map_err(|e| e.to_string())?;
        let q = setting.effective(ctx.config.quota);
        if q == store::Quota::default() {
            continue;
        }
        let pct = |used: u64, limit: Option<u64>| {
            limit.map(|l| format!(" ({}%)", used.saturating_mul(100) / l.max(1)))
        };
        lines.push(format!(
            "quota {}: {}{}{}, {} messages{}{}",
            a.address,
            human_bytes(usage.bytes),
            q.storage
                .map(|b| format!(" of {}", human_bytes(b)))
                .unwrap_or_default(),
            pct(usage.bytes, q.storage).unwrap_or_default(),
            usage.messages,
            q.messages.map(|m| format!(" of {m}")).unwrap_or_default(),
            pct(usage.messages, q.messages).unwrap_or_default(),
        ));
        quotas.push(serde_json::json!({
            "address": a.address,
            "bytes": usage.bytes, "storage": q.storage,
            "messages": usage.messages, "max_messages": q.messages,
        }));
    }
    match stats.oldest_queued {
        Some(t) => lines.push(format!(
            "outbound queue: {} messages, oldest {} old",
            stats.queue,
            human_age(now - t)
        )),
        None => lines.push(format!("outbound queue: {} messages", stats.queue)),
    }
    lines.push(format!(
        "unclean starts: {}{}",
        stats.unclean_starts,
        if stats.fault4_pending {
            " (fault 4: restarted after a hang or power loss, not yet acknowledged)"
        } else {
            ""
        }
    ));
    let mut data = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "daemon": daemon,
        "store": stats,
        "free_bytes": free,
        "queue_oldest_age_s": stats.oldest_queued.map(|t| now - t),
        "quotas": quotas,
        "leds": null,
    });
    // The board's fields (`leds`, `health`, `faults`, `watchdog`, ...) at the top level.
    if let (Some(map), serde_json::Value::Object(hw)) = (data.as_object_mut(), board) {
        map.extend(hw);
    }
    Ok(Response::ok(lines.join("\n"), data))
}

/// Path of the control socket for a config.
pub fn socket_path(cfg: &Config) -> PathBuf {
    cfg.server.data_dir.join(SOCKET)
}

/// Runs an export in the daemon, sending `{"done":N,"total":M}` lines (at most about
/// four a second) and then the final response line.
async fn export_stream(
    ctx: Ctx,
    address: String,
    dir: PathBuf,
    format: crate::data::export::Format,
    wr: &mut tokio::net::unix::OwnedWriteHalf,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, u64)>(4);
    let job = tokio::task::spawn_blocking(move || {
        let mut last = Instant::now();
        let mut progress = |done: u64, total: u64| {
            if last.elapsed() >= Duration::from_millis(250) {
                last = Instant::now();
                let _ = tx.try_send((done, total));
            }
        };
        match export(&ctx, &address, &dir, format, &mut progress) {
            Ok(r) => r,
            Err(e) => Response::err(e),
        }
    });
    while let Some((done, total)) = rx.recv().await {
        let line = format!("{{\"done\":{done},\"total\":{total}}}\n");
        if wr.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
    let resp = job
        .await
        .unwrap_or_else(|_| Response::err("internal error"));
    if let Ok(mut out) = serde_json::to_vec(&resp) {
        out.push(b'\n');
        let _ = wr.write_all(&out).await;
    }
}

/// Connects to the daemon and sends `req` (one JSON line); answers are read with
/// [`Request::timeout`] per read. `Ok(None)` means no daemon is listening.
fn request(path: &Path, req: &Request) -> std::io::Result<Option<UnixStream>> {
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(req.timeout()))?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    Ok(Some(stream))
}

/// Sends an export request and follows its progress lines; `None` when no daemon runs.
pub fn send_export(
    path: &Path,
    req: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> std::io::Result<Option<Response>> {
    let Some(stream) = request(path, req)? else {
        return Ok(None);
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut resp = String::new();
        if reader
            .by_ref()
            .take(MAX_REQUEST as u64)
            .read_line(&mut resp)?
            == 0
        {
            return Err(std::io::Error::other("the daemon closed the connection"));
        }
        let v: serde_json::Value = serde_json::from_str(&resp)
            .map_err(|e| std::io::Error::other(format!("bad reply from daemon: {e}")))?;
        if v.get("ok").is_some() {
            return serde_json::from_value(v)
                .map(Some)
                .map_err(|e| std::io::Error::other(format!("bad reply from daemon: {e}")));
        }
        progress(
            v["done"].as_u64().unwrap_or(0),
            v["total"].as_u64().unwrap_or(0),
        );
    }
}

/// Sends a request to a running daemon. `Ok(None)` means no daemon is listening.
pub fn send(path: &Path, req: &Request) -> std::io::Result<Option<Response>> {
    let Some(stream) = request(path, req)? else {
        return Ok(None);
    };
    let mut reader = BufReader::new(stream);
    let mut resp = String::new();
    reader.read_line(&mut resp)?;
    serde_json::from_str(&resp)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("bad reply from daemon: {e}")))
}

/// Binds the control socket (mode 0600), replacing a stale one. Call only while
/// holding the store (its file lock proves no other daemon runs).
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves the control socket until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::UnixListener,
    ctx: Ctx,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => break,
            c = listener.accept() => c,
        };
        let Ok((stream, _)) = conn else { continue };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut rd = tokio::io::BufReader::new(rd).take(MAX_REQUEST as u64);
            let mut line = String::new();
            if rd.read_line(&mut line).await.is_err() {
                return;
            }
            let resp = match serde_json::from_str::<Request>(&line) {
                Ok(Request::Import { address, source }) => {
                    let max =
                        usize::try_from(ctx.config.limits.max_message_size).unwrap_or(usize::MAX);
                    let store = ctx.store.clone();
                    let rd = rd.into_inner();
                    crate::data::import::serve_stream(store, address, source, max, rd, wr).await;
                    return;
                }
                Ok(Request::Export {
                    address,
                    dir,
                    format,
                }) => {
                    export_stream(ctx.clone(), address, dir, format, &mut wr).await;
                    return;
                }
                Ok(req) => {
                    let c = ctx.clone();
                    tokio::task::spawn_blocking(move || handle(&c, req))
                        .await
                        .unwrap_or_else(|_| Response::err("internal error"))
                }
                Err(e) => Response::err(format!("bad request: {e}")),
            };
            if let Ok(mut out) = serde_json::to_vec(&resp) {
                out.push(b'\n');
                let _ = wr.write_all(&out).await;
            }
        });
    }
}

use tokio::io::AsyncReadExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> (tempfile::TempDir, Ctx) {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        (
            d,
            Ctx {
                store,
                config: Arc::new(Config::defaults()),
                daemon: None,
            },
        )
    }

    #[test]
    fn user_and_alias_lifecycle() {
        let (_d, c) = ctx();
        let r = handle(
            &c,
            Request::UserAdd {
                address: "bob@home.arpa".into(),
                password: None,
            },
        );
        assert!(r.ok, "{r:?}");
        let pw = r.data["password"].as_str().unwrap().to_string();
        assert!(
            auth::authenticate(&c.store, "bob@home.arpa", &pw, "home.arpa")
                .unwrap()
                .is_some()
        );
        assert!(
            !handle(
                &c,
                Request::UserAdd {
                    address: "bob@elsewhere.org".into(),
                    password: None
                }
            )
            .ok
        );
        assert!(
            !handle(
                &c,
                Request::UserAdd {
                    address: "carol@home.arpa".into(),
                    password: Some("short".into())
                }
            )
            .ok
        );
        assert!(
            handle(
                &c,
                Request::AliasAdd {
                    alias: "robert@home.arpa".into(),
                    address: "bob@home.arpa".into()
                }
            )
            .ok
        );
        let l = handle(&c, Request::AliasList);
        assert!(l.text.contains("robert@home.arpa"), "{l:?}");
        assert!(
            handle(
                &c,
                Request::UserPasswd {
                    address: "bob@home.arpa".into(),
                    password: Some("new password".into())
                }
            )
            .ok
        );
        assert!(
            auth::authenticate(&c.store, "bob", "new password", "home.arpa")
                .unwrap()
                .is_some()
        );
        let st = handle(&c, Request::Status);
        assert!(st.ok && st.text.contains("1 accounts"), "{st:?}");
        assert!(
            handle(
                &c,
                Request::UserDel {
                    address: "bob@home.arpa".into()
                }
            )
            .ok
        );
        assert!(
            handle(&c, Request::AliasList)
                .data
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(
            !handle(
                &c,
                Request::UserDel {
                    address: "bob@home.arpa".into()
                }
            )
            .ok
        );
    }
}

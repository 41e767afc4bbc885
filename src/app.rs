//! `letterbox serve`: opens the store, records the start, provisions the first
//! account and the DKIM keys, loads TLS, serves the control socket, binds and runs the protocol listeners
//! (`net`) and the outbound queue runner (`queue`), and shuts down on SIGTERM/SIGINT (stop accepting, sessions send their
//! goodbye, let them finish within a bound, final commit, exit 0).
//! SIGHUP reloads the TLS certificate.
//!
//! The board ([`Supervisor`]) is opened right after the store (whose lock proves no other
//! daemon drives the GPIO lines) and before anything listens: a bad board file stops the
//! start with exit code 2. A button hold cancels the same stop token as SIGTERM; after the
//! final commit the watchdog is disarmed and, on a real board, the box powers off.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::control::{self, Ctx, DaemonInfo};
use crate::hw::supervisor::Supervisor;
use crate::imap::driver::{self as imap, Imap};
use crate::net::{ConnLimits, Listener, Shared};
use crate::pop3::driver::{self as pop3, Pop3};
use crate::smtp::Mode;
use crate::smtp::driver::{self as smtp, Smtp};
use crate::store::{Op, Output, Store};
use crate::tls::Tls;
use crate::{auth, store};

/// How long sessions get to finish after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How `serve` was started, beyond the configuration itself.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Where board files are looked up (see `hw::board`).
    pub board_dir: PathBuf,
    /// The configuration file, if one was read: `[[user]]` passwords are erased from it.
    pub config_path: Option<PathBuf>,
    /// The mistake in the configuration file when `--survive-bad-config` made the daemon
    /// start with the defaults instead: shown as fault 1.
    pub config_error: Option<String>,
}

/// The file, beside the configuration file (symlinks followed, so on the image it is on the
/// boot partition where the user edits), that explains a configuration mistake.
pub const CONFIG_ERROR_FILE: &str = "letterbox-error.txt";

fn config_error_path(config: &Path) -> PathBuf {
    let real = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    real.parent()
        .unwrap_or(Path::new("."))
        .join(CONFIG_ERROR_FILE)
}

/// Writes `error` into [`CONFIG_ERROR_FILE`] beside `config` (best effort: logged on failure).
pub fn write_config_error(config: &Path, error: &str) {
    let path = config_error_path(config);
    let text = format!(
        "Letterbox could not use {}:\r\n\r\n  {error}\r\n\r\nThe box is running with the default settings \
         (the red LED blinks once: fault 1).\r\nCorrect the file and restart the box; this note then disappears.\r\n",
        config.display()
    );
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    if let Err(e) = write() {
        eprintln!("letterbox: cannot write {}: {e}", path.display());
    }
}

/// Removes a stale [`CONFIG_ERROR_FILE`] once the configuration loads again.
pub fn clear_config_error(config: &Path) {
    let path = config_error_path(config);
    if path.exists()
        && let Err(e) = std::fs::remove_file(&path)
    {
        eprintln!("letterbox: cannot remove {}: {e}", path.display());
    }
}

/// Applies `[[user]]`: creates each listed account that does not exist (it needs a
/// password), sets the password of those that do, and adds their aliases; through the same
/// handler as `letterbox user add` / `passwd` and `alias add`. Returns how many passwords were
/// applied; problems are logged (without the password) and skip that entry.
pub fn provision_users(store: &Store, cfg: &Arc<Config>) -> usize {
    let ctx = Ctx {
        store: store.clone(),
        config: cfg.clone(),
        daemon: None,
    };
    let existing: Vec<String> = match store.read(|r| r.accounts()) {
        Ok(a) => a.into_iter().map(|a| a.address).collect(),
        Err(e) => {
            tracing::error!(error = %e, "[[user]]: cannot read the accounts");
            return 0;
        }
    };
    let aliases: Vec<(String, String)> = store.read(|r| r.aliases()).unwrap_or_default();
    let mut applied = 0;
    for user in &cfg.users {
        let exists = existing
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&user.address));
        let password = user.password.as_ref().map(|p| p.0.clone());
        let req = match (exists, password) {
            (true, Some(password)) => Some(control::Request::UserPasswd {
                address: user.address.clone(),
                password: Some(password),
            }),
            (false, Some(password)) => Some(control::Request::UserAdd {
                address: user.address.clone(),
                password: Some(password),
            }),
            (true, None) => None,
            (false, None) => {
                tracing::error!(address = %user.address, "[[user]]: a new account needs a password; not created");
                continue;
            }
        };
        if let Some(req) = req {
            let r = control::handle(&ctx, req);
            if r.ok {
                applied += 1;
                tracing::info!(address = %user.address, created = !exists, "[[user]]: account provisioned from the configuration file");
            } else {
                tracing::error!(address = %user.address, error = %r.text, "[[user]]: not applied");
                continue;
            }
        }
        for alias in &user.aliases {
            if aliases
                .iter()
                .any(|(a, t)| a == alias && t == &user.address)
            {
                continue;
            }
            let r = control::handle(
                &ctx,
                control::Request::AliasAdd {
                    alias: alias.clone(),
                    address: user.address.clone(),
                },
            );
            if !r.ok {
                tracing::error!(%alias, address = %user.address, error = %r.text, "[[user]]: alias not added");
            }
        }
    }
    applied
}

/// Creates `postmaster@<domain>` on a store without accounts; returns its password. When
/// `[[user]]` created the accounts instead, `postmaster@<domain>` (RFC 5321 section 4.5.1)
/// becomes an alias of the first of them unless it already leads somewhere.
pub fn provision_first_account(
    store: &Store,
    cfg: &Config,
) -> Result<Option<(String, String)>, store::Error> {
    let accounts = store.read(|r| r.accounts())?;
    if !accounts.is_empty() {
        let postmaster = format!("postmaster@{}", cfg.primary_domain());
        let taken = accounts.iter().any(|a| a.address == postmaster)
            || store
                .read(|r| r.aliases())?
                .iter()
                .any(|(a, _)| *a == postmaster);
        if !taken && let Some(first) = cfg.users.first() {
            store.write(Op::AddAlias {
                alias: postmaster,
                target: first.address.clone(),
            })?;
        }
        return Ok(None);
    }
    let address = format!("postmaster@{}", cfg.primary_domain());
    let password = auth::random_password();
    let hash = auth::hash_password(&password)?;
    store.write(Op::CreateAccount {
        address: address.clone(),
        password_hash: hash,
    })?;
    Ok(Some((address, password)))
}

/// The server name the first-start banner tells mail apps to use: one they can reach.
/// The appliance is `letterbox.local` (mDNS). On a host, the client services' own address when
/// they listen on one (`127.0.0.1` with the built-in defaults: `letterbox.home.arpa` resolves
/// nowhere, RFC 8375), `localhost` when they listen on every address, and the host name only
/// when no client service is enabled.
pub(crate) fn client_host(cfg: &Config) -> String {
    if cfg.is_appliance() {
        return "letterbox.local".to_string();
    }
    let l = &cfg.listen;
    let first = [
        l.imaps,
        l.imap,
        l.submissions,
        l.submission,
        l.pop3s,
        l.pop3,
    ]
    .into_iter()
    .flatten()
    .next();
    match first.map(|a| a.ip()) {
        Some(ip) if ip.is_unspecified() => "localhost".to_string(),
        Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Some(ip) => ip.to_string(),
        None => cfg.server.hostname.clone(),
    }
}

fn banner(cfg: &Config, tls: &Tls, address: &str, password: &str) -> String {
    let host = client_host(cfg);
    let port = |a: Option<std::net::SocketAddr>| {
        a.map(|a| a.port().to_string())
            .unwrap_or_else(|| "off".into())
    };
    let l = &cfg.listen;
    format!(
        "\n  Letterbox is set up. This password is shown only once:\n\n    account:  {address}\n    password: {password}\n\n  Mail app settings (server {host}, user name {address}):\n    IMAP  port {} (TLS) or {} (STARTTLS)\n    POP3  port {} (TLS) or {} (STARTTLS)\n    SMTP  port {} (TLS) or {} (STARTTLS), with password\n  Certificate: SHA-256 {}\n{}",
        port(l.imaps),
        port(l.imap),
        port(l.pop3s),
        port(l.pop3),
        port(l.submissions),
        port(l.submission),
        tls.fingerprint().unwrap_or_default(),
        match (tls.ca_path(), tls.ca_fingerprint()) {
            (Some(path), Some(fp)) => format!(
                "  Household CA: {} (SHA-256 {fp})\n    install it once on each device; then no certificate warnings\n",
                path.display()
            ),
            _ => String::new(),
        },
    )
}

/// Binds every configured service (SPEC §2); an error names the service and the address.
async fn bind_listeners(shared: &Shared) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for (service, addr) in shared.config.listen.services() {
        let Some(addr) = addr else { continue };
        let host = &shared.config.server.hostname;
        let (implicit_tls, busy) = match service {
            "smtp" | "submission" => (false, smtp::busy(host)),
            "submissions" => (true, smtp::busy(host)),
            "pop3" => (false, pop3::busy()),
            "pop3s" => (true, pop3::busy()),
            "imap" => (false, imap::busy()),
            "imaps" => (true, imap::busy()),
            // The web listeners: a taken HTTP(S) port must not stop the mail, so it is
            // logged and skipped; `status` and the page show the service down.
            "http" | "https" => {
                match Listener::bind(service, addr, None, crate::web::busy()).await {
                    Ok(l) => out.push(l),
                    Err(e) => {
                        tracing::error!(service, %addr, error = %e, "cannot listen; the web pages are off")
                    }
                }
                continue;
            }
            _ => {
                tracing::info!(service, "not served yet by this build");
                continue;
            }
        };
        let tls = implicit_tls.then(|| shared.tls.clone());
        let l = Listener::bind(service, addr, tls, busy)
            .await
            .map_err(|e| format!("cannot listen for {service} on {addr}: {e}"))?;
        out.push(l);
    }
    Ok(out)
}

/// Runs each bound listener on the tracker, under the shared connection caps.
fn start_listeners(listeners: Vec<Listener>, shared: &Shared, ctx: &Ctx, tracker: &TaskTracker) {
    let limits = ConnLimits::new(
        shared.config.limits.max_connections,
        shared.config.limits.max_connections_per_ip,
    );
    let pop3 = Pop3::new(shared.clone());
    let smtp = Smtp::new(shared.clone());
    let imap = Imap::new(shared.clone());
    let web = crate::web::Web::new(ctx.clone(), shared.tls.clone());
    for l in listeners {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(service = l.service(), %addr, "listening");
        }
        let mode = match l.service() {
            "pop3" | "pop3s" => {
                tracker.spawn(pop3.clone().serve(l, limits.clone(), tracker.clone()));
                continue;
            }
            "imap" | "imaps" => {
                tracker.spawn(imap.clone().serve(l, limits.clone(), tracker.clone()));
                continue;
            }
            "http" | "https" => {
                tracker.spawn(web.clone().serve(
                    l,
                    limits.clone(),
                    shared.stop.clone(),
                    tracker.clone(),
                ));
                continue;
            }
            "smtp" => Mode::Mx,
            "submission" => Mode::Submission,
            "submissions" => Mode::Submissions,
            _ => continue,
        };
        tracker.spawn(smtp.clone().serve(l, mode, limits.clone(), tracker.clone()));
    }
}

/// Runs the daemon until a shutdown signal or a button hold; returns the process exit code
/// (2 for a board that cannot be opened). Board files are read from `board_dir`.
pub async fn run(cfg: Arc<Config>, opts: &ServeOptions) -> i32 {
    let board_dir = opts.board_dir.as_path();
    let started = Instant::now();
    let data_dir = cfg.server.data_dir.clone();
    if let Err(e) = std::fs::create_dir_all(&data_dir) {
        eprintln!(
            "letterbox: cannot create data_dir {}: {e}",
            data_dir.display()
        );
        return 1;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let store = match tokio::task::spawn_blocking({
        let d = data_dir.clone();
        move || Store::open(&d)
    })
    .await
    {
        Ok(Ok(s)) => {
            s.set_default_quota(cfg.quota);
            s
        }
        Ok(Err(store::Error::Locked)) => {
            eprintln!(
                "letterbox: another letterbox is already running on {}",
                data_dir.display()
            );
            return 1;
        }
        Ok(Err(e)) => {
            eprintln!(
                "letterbox: cannot open the store in {}: {e}",
                data_dir.display()
            );
            return 1;
        }
        Err(_) => return 1,
    };
    // The board before anything listens: a bad board file is a configuration error.
    let board = match Supervisor::open_board(&cfg, board_dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("letterbox: board {:?}: {e}", cfg.board.name);
            let s2 = store.clone();
            let _ = tokio::task::spawn_blocking(move || s2.close()).await;
            return 2;
        }
    };
    let s2 = store.clone();
    match tokio::task::spawn_blocking(move || s2.write(Op::MarkRunning)).await {
        Ok(Ok(Output::Unclean(true))) => tracing::warn!(
            "the previous run did not stop cleanly (power loss, kill or hang): fault 4"
        ),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            eprintln!("letterbox: cannot write to the store: {e}");
            return 1;
        }
        Err(_) => return 1,
    }
    let tls = match Tls::from_config(&cfg) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("letterbox: TLS: {e}");
            return 1;
        }
    };
    // `[[user]]` first (first-boot provisioning), then erase the applied passwords from the
    // file, so that the plaintext does not outlive this start.
    if !cfg.users.is_empty() {
        let (s2, c2) = (store.clone(), cfg.clone());
        let applied = tokio::task::spawn_blocking(move || provision_users(&s2, &c2))
            .await
            .unwrap_or(0);
        if applied > 0
            && let Some(path) = &opts.config_path
        {
            match crate::config::erase_passwords(path) {
                Ok(n) => {
                    tracing::info!(erased = n, file = %path.display(), "[[user]]: plaintext passwords erased from the configuration file")
                }
                Err(e) => {
                    tracing::error!(error = %e, file = %path.display(), "[[user]]: cannot erase the plaintext passwords")
                }
            }
        }
    }
    let (s2, c2) = (store.clone(), cfg.clone());
    match tokio::task::spawn_blocking(move || provision_first_account(&s2, &c2)).await {
        Ok(Ok(Some((addr, pw)))) => println!("{}", banner(&cfg, &tls, &addr, &pw)),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not create the first account"),
        Err(_) => {}
    }

    // DKIM keys for every domain, generated once (SPEC §5 "Signed outbound mail").
    let (s2, c2) = (store.clone(), cfg.clone());
    match tokio::task::spawn_blocking(move || crate::queue::ensure_dkim_keys(&s2, &c2)).await {
        Ok(Ok(made)) => {
            for domain in made {
                tracing::info!(%domain, "DKIM keys generated; `letterbox dkim dns` prints the records to publish");
            }
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not generate DKIM keys; mail leaves unsigned")
        }
        Err(_) => {}
    }

    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut supervisor =
        Supervisor::start(board, store.clone(), tls.clone(), cfg.clone(), stop.clone());
    if let Some(e) = &opts.config_error {
        supervisor.hw().config_error(e);
    }
    let sock = control::socket_path(&cfg);
    let control_listener = match control::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "letterbox: cannot bind the control socket {}: {e}",
                sock.display()
            );
            supervisor.finish(false).await;
            store.close();
            return 1;
        }
    };
    let shared = Shared {
        store: store.clone(),
        config: cfg.clone(),
        tls: tls.clone(),
        limiter: Arc::new(auth::Limiter::default()),
        budget: crate::budget::Budget::new(cfg.limits.message_memory()),
        stop: stop.clone(),
        spam_counts: Default::default(),
    };
    let listeners = match bind_listeners(&shared).await {
        Ok(l) => l,
        Err(msg) => {
            eprintln!("letterbox: {msg}");
            let _ = std::fs::remove_file(&sock);
            // Nothing ran: record a clean stop, or the next start would count this
            // refused start as an unclean one (fault 4).
            let s2 = store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let _ = s2.write(Op::MarkStopped);
                s2.close();
            })
            .await;
            supervisor.finish(true).await;
            return 1;
        }
    };
    let bound: Vec<(String, std::net::SocketAddr)> = listeners
        .iter()
        .filter_map(|l| Some((l.service().to_string(), l.local_addr().ok()?)))
        .collect();
    let services: Vec<(String, String)> = bound
        .iter()
        .map(|(s, a)| (s.clone(), a.to_string()))
        .collect();
    let fetch_board = crate::fetch::Board::new(&cfg);
    // Scheduled backups ([backup]): the tracker feeds `status` and fault 6.
    let backups = crate::data::backup::schedule::Tracker::new(
        crate::store::now_unix(),
        cfg.backup.dir.as_deref(),
    );
    tracker.spawn(crate::data::backup::schedule::run(
        store.clone(),
        cfg.clone(),
        opts.config_path.clone(),
        backups.clone(),
        supervisor.hw(),
        stop.clone(),
    ));
    let info = Arc::new(DaemonInfo {
        started,
        services,
        cert: format!(
            "{}{}",
            tls.cert_path().display(),
            if tls.is_household() {
                " (household CA)"
            } else {
                ""
            }
        ),
        tls: Some(tls.clone()),
        hw: supervisor.hw(),
        fetch: fetch_board.clone(),
        config_path: opts.config_path.clone(),
        backups: backups.clone(),
        spam_counts: shared.spam_counts.clone(),
    });
    let ctx = Ctx {
        store: store.clone(),
        config: cfg.clone(),
        daemon: Some(info),
    };
    start_listeners(listeners, &shared, &ctx, &tracker);
    tracker.spawn(control::serve(control_listener, ctx, stop.clone()));
    // ACME ([acme]): obtains and renews the certificate; the household one meanwhile.
    if let Some(acme) = cfg.acme.clone()
        && tls.acme_files().is_some()
    {
        tracker.spawn(crate::tls::acme::run(
            tls.clone(),
            acme,
            cfg.server.hostname.clone(),
            supervisor.hw(),
            stop.clone(),
        ));
    }
    // The household certificate's renewal (no restart; fault 2 when it keeps failing).
    tracker.spawn(crate::tls::renew::run(
        tls.clone(),
        supervisor.hw(),
        stop.clone(),
    ));
    let hw = supervisor.hw();
    let relay_report: crate::queue::RelayReport = Arc::new(move |r| hw.relay_refusal(r));
    if let Err(e) = crate::queue::start(
        store.clone(),
        cfg.clone(),
        stop.clone(),
        &tracker,
        Some(relay_report),
    ) {
        // Mail stays queued (nothing is lost); the red LED's fault 3 shows it stuck.
        tracing::error!(error = %e, "outbound queue not started");
    }
    // The learning junk filter's training (src/spam/learn.rs).
    tracker.spawn(crate::spam::learn::run(
        store.clone(),
        cfg.spam_filter.clone(),
        stop.clone(),
    ));
    crate::fetch::start(
        store.clone(),
        cfg.clone(),
        Some(supervisor.hw()),
        fetch_board,
        stop.clone(),
        &tracker,
    );
    supervisor.up(&bound);

    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            eprintln!("letterbox: cannot install signal handlers");
            return 1;
        }
    };
    // Give heap freed after bursts of work back to the kernel (see `mem`).
    tracker.spawn({
        let stop = stop.clone();
        async move {
            let mut tick = tokio::time::interval(crate::mem::TRIM_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => crate::mem::trim(),
                    _ = stop.cancelled() => break,
                }
            }
        }
    });
    tracing::info!(ready_ms = started.elapsed().as_millis() as u64, data_dir = %data_dir.display(), message_memory = shared.budget.max(), "letterbox ready");
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = hup.recv() => match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: certificate reload failed; keeping the old one"),
            },
            _ = stop.cancelled() => break,
        }
    }
    // Stop accepting, let sessions finish, then the final commit.
    supervisor.stopping();
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "sessions still open after {:?}; closing them",
            SHUTDOWN_GRACE
        );
    }
    let _ = std::fs::remove_file(&sock);
    let s2 = store.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let r = s2.write(Op::MarkStopped);
        s2.close();
        r
    })
    .await;
    let clean = matches!(ok, Ok(Ok(_)));
    // Disarm the watchdog only after the final commit, and only if it succeeded.
    let power_off = supervisor.finish(clean).await;
    if !clean {
        tracing::error!("final commit failed");
        return 1;
    }
    tracing::info!("stopped cleanly");
    if power_off && cfg.board.name != crate::hw::SIM {
        power_off_now().await;
    }
    0
}

/// The button's safe shutdown on the appliance: everything is committed and the watchdog
/// disarmed; ask systemd to power off (on the host the daemon just exits).
async fn power_off_now() {
    tracing::warn!("button hold: powering off (systemctl poweroff)");
    let run = tokio::task::spawn_blocking(|| {
        std::process::Command::new("systemctl")
            .arg("poweroff")
            .status()
    });
    match run.await {
        Ok(Ok(s)) if s.success() => {}
        Ok(Ok(s)) => tracing::error!(status = %s, "systemctl poweroff failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot run systemctl poweroff"),
        Err(_) => tracing::error!("cannot run systemctl poweroff"),
    }
}

#[cfg(test)]
mod tests {
    use super::client_host;
    use crate::config::Config;

    #[test]
    fn the_banner_names_a_server_a_client_can_reach() {
        let host = Config::defaults();
        assert_eq!(client_host(&host), "127.0.0.1");
        let any = Config::parse("[listen]\nimaps = \"0.0.0.0:2993\"\n", "t").unwrap();
        assert_eq!(client_host(&any), "localhost");
        let v6 = Config::parse("[listen]\nimaps = \"[::1]:2993\"\n", "t").unwrap();
        assert_eq!(client_host(&v6), "[::1]");
        let pi = Config::parse("[board]\nname = \"rpi4\"\n", "t").unwrap();
        assert_eq!(client_host(&pi), "letterbox.local");
    }
}

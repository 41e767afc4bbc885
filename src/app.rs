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

use std::path::Path;
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

/// Creates `postmaster@<domain>` on a store without accounts; returns its password.
pub fn provision_first_account(
    store: &Store,
    cfg: &Config,
) -> Result<Option<(String, String)>, store::Error> {
    if !store.read(|r| r.accounts())?.is_empty() {
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

fn banner(cfg: &Config, tls: &Tls, address: &str, password: &str) -> String {
    let host = if cfg.is_appliance() {
        "letterbox.local".to_string()
    } else {
        cfg.server.hostname.clone()
    };
    let port = |a: Option<std::net::SocketAddr>| {
        a.map(|a| a.port().to_string())
            .unwrap_or_else(|| "off".into())
    };
    let l = &cfg.listen;
    format!(
        "\n  Letterbox is set up. This password is shown only once:\n\n    account:  {address}\n    password: {password}\n\n  Mail app settings (server {host}, user name {address}):\n    IMAP  port {} (TLS) or {} (STARTTLS)\n    POP3  port {} (TLS) or {} (STARTTLS)\n    SMTP  port {} (TLS) or {} (STARTTLS), with password\n  Certificate: {}{}\n",
        port(l.imaps),
        port(l.imap),
        port(l.pop3s),
        port(l.pop3),
        port(l.submissions),
        port(l.submission),
        if tls.is_self_signed() {
            "self-signed, SHA-256 "
        } else {
            ""
        },
        tls.fingerprint().unwrap_or_default(),
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
fn start_listeners(listeners: Vec<Listener>, shared: &Shared, tracker: &TaskTracker) {
    let limits = ConnLimits::new(
        shared.config.limits.max_connections,
        shared.config.limits.max_connections_per_ip,
    );
    let pop3 = Pop3::new(shared.clone());
    let smtp = Smtp::new(shared.clone());
    let imap = Imap::new(shared.clone());
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
pub async fn run(cfg: Arc<Config>, board_dir: &Path) -> i32 {
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
        Ok(Ok(s)) => s,
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
    let info = Arc::new(DaemonInfo {
        started,
        services,
        cert: format!(
            "{}{}",
            tls.cert_path().display(),
            if tls.is_self_signed() {
                " (self-signed)"
            } else {
                ""
            }
        ),
        hw: supervisor.hw(),
    });
    let ctx = Ctx {
        store: store.clone(),
        config: cfg.clone(),
        daemon: Some(info),
    };
    tracker.spawn(control::serve(control_listener, ctx, stop.clone()));
    start_listeners(listeners, &shared, &tracker);
    if let Err(e) = crate::queue::start(store.clone(), cfg.clone(), stop.clone(), &tracker) {
        // Mail stays queued (nothing is lost); the red LED's fault 3 shows it stuck.
        tracing::error!(error = %e, "outbound queue not started");
    }
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

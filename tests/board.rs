//! The board end to end (SPEC §6, issue 7): the real daemon with the simulated board and a
//! fake watchdog device (a plain file that gets `.` per feed and `V` on the magic close).
//!
//! - the watchdog is fed only while the health probe passes: feeding stops when the store
//!   probe fails and when the whole runtime is blocked, resumes afterwards, and a clean
//!   exit writes `V`;
//! - an SMTP delivery turns the amber LED on; marking it `\Seen` over IMAP turns it off
//!   (and `-FLAGS` on again), and removing the message (POP3 DELE + QUIT) turns it off;
//! - `kill -9` and a restart show fault 4 (red, 4 blinks) until `button press`;
//! - `button hold 3` shuts the daemon down cleanly (exit 0) with nothing lost;
//! - a bad board file stops the start with exit code 2 before anything listens;
//! - under systemd (`NOTIFY_SOCKET`), READY=1, WATCHDOG=1 and STOPPING=1 are sent.
//!
//! Every wait is bounded.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{RUN_TIMEOUT, Server, free_ports, py_deliver, run_bounded, wait_until};
use serde_json::{Value, json};

fn dots(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches('.')
        .count()
}

fn led(st: &Value, name: &str) -> (Value, bool) {
    let l = &st["leds"][name];
    (l["pattern"].clone(), l["lit"].as_bool().unwrap_or(false))
}

/// Checks that no feed happens in a window that starts well after the probe stopped
/// passing (max probe age 1 s + one feed interval of 1 s, with margin for a loaded host),
/// then that feeding resumes once the failure is over.
fn assert_feeding_pauses_and_resumes(wd: &std::path::Path, what: &str) {
    std::thread::sleep(Duration::from_secs(3));
    let before = dots(wd);
    std::thread::sleep(Duration::from_secs(3));
    let after = dots(wd);
    assert_eq!(
        before, after,
        "{what}: the watchdog was fed while the probe could not pass"
    );
    wait_until(
        &format!("feeding to resume after {what}"),
        Duration::from_secs(20),
        || dots(wd) > after,
    );
}

#[test]
fn watchdog_is_fed_only_while_the_probe_passes_and_disarmed_on_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("watchdog");
    std::fs::write(&wd, "").unwrap();
    let mut s = Server::start_with(&format!(
        "[watchdog]\ndevice = \"{}\"\ntimeout_s = 3\n",
        wd.display()
    ));
    wait_until("the first feeds", Duration::from_secs(15), || {
        dots(&wd) >= 2
    });
    let st = s.status_json();
    assert_eq!(st["watchdog"]["fake"], json!(true), "{st}");
    assert_eq!(st["watchdog"]["feeding"], json!(true), "{st}");
    assert!(
        s.cli(&["status"], "")
            .contains(&format!("watchdog: {}", wd.display()))
    );

    // 1. The store probe fails: fault 1 on the red LED, no feeding.
    s.cli(&["debug-fail-probe", "8"], "");
    wait_until(
        "fault 1 while the probe fails",
        Duration::from_secs(5),
        || {
            let st = s.status_json();
            st["leds"]["red"]["pattern"] == json!({"code": 1})
        },
    );
    assert_feeding_pauses_and_resumes(&wd, "a failing store probe");
    wait_until("fault 1 to clear", Duration::from_secs(10), || {
        s.status_json()["leds"]["red"]["pattern"] == json!("off")
    });

    // 2. Every runtime worker is blocked: the feeder thread lives, but the probe cannot run.
    s.cli(&["debug-block-runtime", "8"], "");
    assert_feeding_pauses_and_resumes(&wd, "a blocked runtime");

    // 3. A clean exit disarms: the magic `V`, and nothing after it.
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
    let text = std::fs::read_to_string(&wd).unwrap();
    assert!(text.ends_with('V'), "no magic close: {text:?}");
    assert_eq!(text.matches('V').count(), 1, "{text:?}");
    assert!(text.len() > 3, "{text:?}");
}

#[test]
fn sim_board_mail_led_fault_four_and_button() {
    let mut s = Server::start();
    s.add_user("alice@home.arpa", "alice password 1");
    let st = s.status_json();
    assert_eq!(st["board"], json!("sim"), "{st}");
    assert_eq!(led(&st, "green"), (json!("solid"), true), "{st}");
    assert_eq!(led(&st, "amber"), (json!("off"), false), "{st}");
    assert_eq!(led(&st, "red"), (json!("off"), false), "{st}");
    assert_eq!(st["watchdog"]["device"], Value::Null, "{st}");
    let text = s.cli(&["status"], "");
    for want in [
        "board: sim",
        "LEDs: green solid (lit), amber off (dark), red off (dark)",
        "service: up, store healthy (green solid)",
        "faults: none (red off)",
        "watchdog: none",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    // An SMTP delivery: the amber LED flickers, then stays on (unseen mail).
    let deliver = py_deliver(
        "bob@example.org",
        &["alice@home.arpa"],
        "b'From: bob@example.org\\r\\nSubject: hi\\r\\n\\r\\nhello\\r\\n'",
    );
    s.python(&deliver);
    wait_until("the delivery to be seen", Duration::from_secs(5), || {
        s.status_json()["last_delivery_age_ms"].is_u64()
    });
    wait_until("amber solid and lit", Duration::from_secs(10), || {
        led(&s.status_json(), "amber") == (json!("solid"), true)
    });
    assert!(
        s.cli(&["status"], "")
            .contains("mail: unseen mail in an INBOX")
    );

    // Marking the message \Seen over IMAP turns amber off; unmarking turns it on again.
    let imap_flags = |op: &str| {
        format!(
            "import imaplib\nM = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)\n\
             M.login('alice@home.arpa', 'alice password 1')\nM.select('INBOX')\n\
             typ, data = M.store('1', '{op}', '(\\\\Seen)')\ncheck(typ == 'OK', typ, data)\nM.logout()\n"
        )
    };
    s.python(&imap_flags("+FLAGS"));
    wait_until(
        "amber off after IMAP \\Seen",
        Duration::from_secs(10),
        || led(&s.status_json(), "amber") == (json!("off"), false),
    );
    s.python(&imap_flags("-FLAGS"));
    wait_until(
        "amber solid after -FLAGS \\Seen",
        Duration::from_secs(10),
        || led(&s.status_json(), "amber") == (json!("solid"), true),
    );

    // The message leaves the INBOX (POP3 DELE + QUIT): amber off.
    s.python(
        "p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)\n\
         p.user('alice@home.arpa'); p.pass_('alice password 1')\n\
         check(p.stat()[0] == 1, p.stat())\n\
         p.dele(1); p.quit()\n",
    );
    wait_until("amber off", Duration::from_secs(10), || {
        led(&s.status_json(), "amber") == (json!("off"), false)
    });

    // A message that must survive everything below.
    s.python(&deliver);
    wait_until("amber solid again", Duration::from_secs(10), || {
        led(&s.status_json(), "amber") == (json!("solid"), true)
    });

    // kill -9, restart: fault 4 until a short press.
    s.kill9();
    s.restart();
    wait_until("fault 4 on the red LED", Duration::from_secs(10), || {
        s.status_json()["leds"]["red"]["pattern"] == json!({"code": 4})
    });
    let st = s.status_json();
    assert_eq!(st["store"]["fault4_pending"], json!(true), "{st}");
    assert_eq!(st["faults"][0]["code"], json!(4), "{st}");
    let text = s.cli(&["status"], "");
    assert!(
        text.contains("fault 4, restarted after a hang: the previous run did not stop cleanly"),
        "{text}"
    );
    assert!(text.contains("red 4 blinks, pause"), "{text}");
    // Still fault 4 a while later: it waits for the acknowledgement.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.status_json()["leds"]["red"]["pattern"],
        json!({"code": 4})
    );
    let out = s.cli(&["button", "press"], "");
    assert!(out.contains("acknowledged"), "{out}");
    wait_until("fault 4 cleared", Duration::from_secs(10), || {
        let st = s.status_json();
        led(&st, "red") == (json!("off"), false) && st["store"]["fault4_pending"] == json!(false)
    });
    assert_eq!(
        led(&s.status_json(), "amber"),
        (json!("solid"), true),
        "the unseen message survived the kill"
    );

    // Hold 3 s: safe shutdown, exit 0.
    s.cli(&["button", "hold", "3"], "");
    let status = s.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}: {}", s.log());
    let log = s.log();
    assert!(log.contains("button held for 3 s: safe shutdown"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");

    // Nothing lost, and no fault 4 after a clean stop.
    s.restart();
    let st = s.status_json();
    assert_eq!(st["store"]["messages"], json!(1), "{st}");
    assert_eq!(st["store"]["fault4_pending"], json!(false), "{st}");
    wait_until(
        "amber solid after the restart",
        Duration::from_secs(10),
        || led(&s.status_json(), "amber") == (json!("solid"), true),
    );
    assert_eq!(led(&s.status_json(), "red"), (json!("off"), false));
    assert!(s.terminate().success());
}

#[test]
fn button_hold_that_is_neither_press_nor_shutdown_does_nothing() {
    let s = Server::start();
    let out = s.cli(&["button", "hold", "1.5"], "");
    assert!(out.contains("nothing happens"), "{out}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.status_json()["service"], json!("up"));
    // Bad durations are refused.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
    cmd.args(["button", "hold", "0", "--config"]).arg(&s.config);
    let out = run_bounded(cmd, b"", RUN_TIMEOUT);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("above 0"));
}

/// Writes a config for board `name` (board files in `<dir>/board/`) that would listen on a
/// free port if it got that far.
fn board_config(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, u16) {
    let port = free_ports()[0];
    let config = dir.join("letterbox.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n[board]\nname = \"{name}\"\n[watchdog]\ndevice = \"\"\n\
             [listen]\nsmtp = \"127.0.0.1:{port}\"\nsubmission = \"\"\nsubmissions = \"\"\n\
             imap = \"\"\nimaps = \"\"\npop3 = \"\"\npop3s = \"\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    (config, port)
}

fn serve(config: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
    cmd.args(["serve", "--config"]).arg(config);
    run_bounded(cmd, b"", RUN_TIMEOUT)
}

#[test]
fn a_bad_board_is_refused_before_anything_listens() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("board")).unwrap();
    let rpi4 = letterbox::hw::builtin_board("rpi4").unwrap();
    for (name, text, want) in [
        (
            "dup",
            rpi4.replace("line = 27", "line = 17"),
            "is already used by",
        ),
        (
            "unknown",
            format!("{rpi4}\n[extra]\nx = 1\n"),
            "unknown key",
        ),
        (
            "nochip",
            rpi4.replace("/dev/gpiochip0", "/dev/letterbox-no-such-chip"),
            "/dev/letterbox-no-such-chip",
        ),
    ] {
        std::fs::write(tmp.path().join("board").join(format!("{name}.toml")), text).unwrap();
        let (config, port) = board_config(tmp.path(), name);
        let out = serve(&config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("letterbox:"))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(lines[0].contains(&format!("board \"{name}\"")), "{stderr}");
        assert!(lines[0].contains(want), "{name}: {stderr}");
        assert!(!stderr.contains("listening"), "{name}: {stderr}");
        // The port was never taken.
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
    // No daemon: the button has nothing to press.
    let (config, _) = board_config(tmp.path(), "sim");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
    cmd.args(["button", "press", "--config"]).arg(&config);
    let out = run_bounded(cmd, b"", RUN_TIMEOUT);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no daemon is running"),
        "{out:?}"
    );
}

#[test]
fn systemd_notify_ready_watchdog_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut s = Server::start_with_env(
        "",
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "3000000"),
        ],
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.iter().any(|m: &String| m == "WATCHDOG=1") {
        let n = sock.recv(&mut buf).expect("a notify datagram within 20 s");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got[0], "READY=1", "{got:?}");
    let st = s.status_json();
    assert_eq!(st["watchdog"]["systemd_s"], json!(3), "{st}");
    assert!(s.terminate().success());
    let mut rest = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if rest.last().is_some_and(|m| m == "STOPPING=1") {
            break;
        }
    }
    assert!(rest.iter().any(|m| m == "STOPPING=1"), "{rest:?}");
}

/// `letterbox debug-gpio` on the host: no GPIO chip here, so only its refusals are tested;
/// the passing run is `image/test-gpio.sh` (a real kernel's PL061 under QEMU).
#[test]
fn debug_gpio_refuses_a_bad_board_and_a_missing_chip() {
    let tmp = tempfile::tempdir().unwrap();
    let rpi4 = letterbox::hw::builtin_board("rpi4").unwrap();
    let run = |name: &str, text: &str| {
        let path = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
        cmd.args(["debug-gpio", "--cycle", "--board"]).arg(&path);
        run_bounded(cmd, b"", RUN_TIMEOUT)
    };
    let out = run("dup", &rpi4.replace("line = 27", "line = 17"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is already used by"),
        "{out:?}"
    );
    let out = run(
        "nochip",
        &rpi4.replace("/dev/gpiochip0", "/dev/letterbox-no-such-chip"),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL open: cannot open GPIO chip /dev/letterbox-no-such-chip"),
        "{stdout}"
    );
    assert!(!stdout.contains("ok  "), "{stdout}");
}

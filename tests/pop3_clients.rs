//! POP3 against real clients from Debian (issue 6 §4): fetchmail in keep mode (UIDL:
//! each message fetched once across runs) over POP3S, fetchmail in fetch-and-delete
//! mode over STLS, and curl over pop3s. Needs the `fetchmail` and `curl` packages
//! (.ci/run installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, py_deliver, run_bounded};

fn message(n: u32) -> String {
    format!(
        "\"From: sender@example.org\\r\\nTo: alice@home.arpa\\r\\nSubject: fetch {n}\\r\\nMessage-ID: <fetch{n}@example.org>\\r\\n\\r\\nbody {n}\\r\\n.dot line {n}\\r\\n\""
    )
}

fn deliver(s: &Server, from: u32, to: u32) {
    let mut script = String::new();
    for n in from..=to {
        script.push_str(&py_deliver(
            "sender@example.org",
            &["alice@home.arpa"],
            &message(n),
        ));
    }
    s.python(&script);
}

/// Runs fetchmail with a generated rcfile; the MDA stores each message as a file in
/// `out`. Returns (exit code, stderr) and the subjects fetched in this run.
fn fetchmail(home: &Path, out: &Path, port: u16, options: &str) -> (i32, String, Vec<String>) {
    assert!(
        Command::new("fetchmail").arg("--version").output().is_ok(),
        "fetchmail is not installed (apt-get install fetchmail)"
    );
    std::fs::create_dir_all(out).unwrap();
    let before: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    let mda = home.join("mda.py");
    std::fs::write(
        &mda,
        format!(
            "import sys, time, os\ndata = sys.stdin.buffer.read()\nopen(os.path.join({:?}, '%d-%d.eml' % (time.time_ns(), os.getpid())), 'wb').write(data)\n",
            out.display().to_string()
        ),
    )
    .unwrap();
    let rc = home.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\nset postmaster root\npoll 127.0.0.1 service {port} protocol POP3 uidl\n  user \"alice@home.arpa\" there with password \"alice password\" is root here\n  {options}\n  mda \"python3 {}\"\n",
            mda.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = Command::new("fetchmail");
    cmd.env("HOME", home)
        .env("FETCHMAILHOME", home)
        .arg("-f")
        .arg(&rc)
        .arg("--idfile")
        .arg(home.join("fetchids"))
        .arg("--pidfile")
        .arg(home.join("fetchmail.pid"))
        .args(["--nodetach", "--silent"]);
    let o = run_bounded(cmd, b"", common::RUN_TIMEOUT);
    let mut subjects: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !before.contains(p))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.contains("\n.dot line"), "dot-unstuffed: {text}");
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .collect();
    subjects.sort();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        subjects,
    )
}

#[test]
fn fetchmail_keep_mode_fetches_each_message_once_over_pop3s() {
    let s = Server::start();
    s.add_user("alice@home.arpa", "alice password");
    deliver(&s, 1, 3);
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("got");
    let (port, opts) = (s.port("pop3s"), "ssl\n  no sslcertck\n  keep");
    let (code, err, got) = fetchmail(home.path(), &out, port, opts);
    assert_eq!(code, 0, "{err}\n{}", s.log());
    assert_eq!(got, ["fetch 1", "fetch 2", "fetch 3"]);
    deliver(&s, 4, 5);
    let (code, err, got) = fetchmail(home.path(), &out, port, opts);
    assert_eq!(code, 0, "{err}");
    assert_eq!(got, ["fetch 4", "fetch 5"], "only the new ones");
    // Nothing new: fetchmail exits 1 ("no mail").
    let (code, _, got) = fetchmail(home.path(), &out, port, opts);
    assert_eq!((code, got.len()), (1, 0));
    // Keep mode left everything on the server.
    s.python("p = poplib.POP3_SSL(H, PORT['pop3s'], context=CTX, timeout=TIMEOUT)\np.user('alice@home.arpa'); p.pass_('alice password')\ncheck(p.stat()[0] == 5, p.stat())\np.quit()\n");
}

#[test]
fn fetchmail_fetch_and_delete_over_stls() {
    let s = Server::start();
    s.add_user("alice@home.arpa", "alice password");
    deliver(&s, 1, 4);
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("got");
    // `sslproto TLS1.2+` without `ssl` makes fetchmail insist on STLS.
    // `sslproto TLS1.2+` without `ssl` makes fetchmail insist on STLS.
    let (port, opts) = (s.port("pop3"), "sslproto TLS1.2+\n  no sslcertck\n  nokeep");
    let (code, err, got) = fetchmail(home.path(), &out, port, opts);
    assert_eq!(code, 0, "{err}\n{}", s.log());
    assert_eq!(got.len(), 4, "{got:?}");
    let (code, _, got) = fetchmail(home.path(), &out, port, opts);
    assert_eq!((code, got.len()), (1, 0), "deleted on the server");
    s.python("p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)\np.stls(CTX)\np.user('alice@home.arpa'); p.pass_('alice password')\ncheck(p.stat() == (0, 0), p.stat())\np.quit()\n");
}

#[test]
fn curl_lists_and_retrieves_over_pop3s() {
    let s = Server::start();
    s.add_user("alice@home.arpa", "alice password");
    deliver(&s, 1, 2);
    let curl = |path: &str| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--insecure",
            "--max-time",
            "20",
            "--user",
            "alice@home.arpa:alice password",
        ])
        .arg(format!("pop3s://127.0.0.1:{}/{path}", s.port("pop3s")));
        let o = run_bounded(cmd, b"", common::RUN_TIMEOUT);
        assert!(
            o.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let list = curl("");
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.starts_with("1 "), "{list}");
    let msg = curl("2");
    assert!(
        msg.contains("Subject: fetch 2") && msg.contains("\n.dot line 2"),
        "{msg}"
    );
}

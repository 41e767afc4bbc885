//! SMTP against Debian's swaks (issue 3 §5): STARTTLS with AUTH PLAIN and LOGIN on
//! submission, implicit TLS on submissions, PIPELINING on the MX listener, and relaying
//! refused without AUTH on every listener. Every accepted message is then read back over
//! POP3 and compared. Needs the `swaks` package (.ci/run installs it).

mod common;

use std::process::Command;

use common::{RUN_TIMEOUT, Server, run_bounded};

fn swaks(args: &[String]) -> (i32, String) {
    assert!(
        Command::new("swaks").arg("--version").output().is_ok(),
        "swaks is not installed (apt-get install swaks)"
    );
    let mut cmd = Command::new("swaks");
    cmd.args(["--timeout", "20", "--silent", "1"]).args(args);
    let o = run_bounded(cmd, b"", RUN_TIMEOUT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn swaks_submission_tls_auth_pipelining_and_relay_refusal() {
    let s = Server::start();
    s.add_user("alice@home.arpa", "alice password");
    s.add_user("bob@home.arpa", "bob password");
    let server = |svc: &str| format!("127.0.0.1:{}", s.port(svc));
    let common = |svc: &str, subject: &str| {
        args(&[
            "--server",
            &server(svc),
            "--from",
            "alice@home.arpa",
            "--to",
            "bob@home.arpa",
            "--header",
            &format!("Subject: {subject}"),
            "--h-From",
            "alice@home.arpa",
            "--body",
            &format!("body of {subject}\n.leading dot\n"),
        ])
    };
    let auth = |mech: &str| {
        args(&[
            "--auth",
            mech,
            "--auth-user",
            "alice@home.arpa",
            "--auth-password",
            "alice password",
        ])
    };

    // Submission (587 role): STARTTLS, then AUTH PLAIN; then AUTH LOGIN.
    for (mech, subject) in [("PLAIN", "swaks plain"), ("LOGIN", "swaks login")] {
        let mut a = common("submission", subject);
        a.push("--tls".into());
        a.extend(auth(mech));
        let (code, out) = swaks(&a);
        assert_eq!(code, 0, "{mech}: {out}\n{}", s.log());
    }
    // Submissions (465 role): implicit TLS.
    let mut a = common("submissions", "swaks implicit tls");
    a.push("--tls-on-connect".into());
    a.extend(auth("PLAIN"));
    let (code, out) = swaks(&a);
    assert_eq!(code, 0, "{out}");
    // MX with PIPELINING.
    let mut a = common("smtp", "swaks pipelined");
    a.push("--pipeline".into());
    let (code, out) = swaks(&a);
    assert_eq!(code, 0, "{out}");

    // Relaying to a foreign domain without AUTH is refused on every listener.
    for (svc, tls) in [
        ("smtp", None),
        ("submission", Some("--tls")),
        ("submissions", Some("--tls-on-connect")),
    ] {
        let mut a = args(&[
            "--server",
            &server(svc),
            "--from",
            "alice@home.arpa",
            "--to",
            "victim@example.org",
        ]);
        if let Some(t) = tls {
            a.push(t.into());
        }
        let (code, out) = swaks(&a);
        assert_ne!(code, 0, "{svc} relayed without AUTH: {out}");
        assert!(
            out.contains("<** 5") || out.contains("<~* 5"),
            "{svc}: expected a 5xx refusal: {out}"
        );
    }

    // Everything accepted arrived intact, dot line included.
    let got = s.python(
        "p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)\n\
         p.user('bob@home.arpa'); p.pass_('bob password')\n\
         n = p.stat()[0]\n\
         subjects = []\n\
         for i in range(1, n + 1):\n\
         \x20   lines = p.retr(i)[1]\n\
         \x20   check(b'.leading dot' in lines, lines)\n\
         \x20   subjects += [l.decode() for l in lines if l.startswith(b'Subject: ')]\n\
         p.quit()\n\
         print('\\n'.join(sorted(subjects)))\n",
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "Subject: swaks implicit tls",
            "Subject: swaks login",
            "Subject: swaks pipelined",
            "Subject: swaks plain"
        ],
        "{got}"
    );
}

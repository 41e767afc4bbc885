//! A terminal program (mutt) in a tmux server of the test's own: a private socket in the
//! test's temp dir, one detached 200×50 session, `send-keys` to type, `capture-pane` to
//! read the screen. Every wait is bounded; the server is killed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{RUN_TIMEOUT, run_bounded};

/// How long one screen may take to appear.
pub const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The session's name inside the private server.
const SESSION: &str = "t";

/// A tmux server with one session running a program.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Runs `command` (through `sh -c`) in a new detached session, with `env` set.
    pub fn start(socket: &Path, env: &[(&str, &Path)], command: &str) -> Tmux {
        let tmux = Tmux {
            socket: socket.to_path_buf(),
        };
        let mut cmd = tmux.cmd();
        cmd.args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
        ]);
        cmd.args(["-s", SESSION]);
        for (k, v) in env {
            cmd.env(k, v);
            cmd.arg("-e").arg(format!("{k}={}", v.display()));
        }
        cmd.arg(command);
        let out = run_bounded(cmd, b"", RUN_TIMEOUT);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// `tmux send-keys`: `literal` text as typed, or else key names (`Enter`, `C-g`).
    fn send(&self, keys: &str, literal: bool) {
        let mut cmd = self.cmd();
        cmd.args(["send-keys", "-t", SESSION]);
        if literal {
            cmd.arg("-l");
        }
        cmd.arg(keys);
        let out = run_bounded(cmd, b"", RUN_TIMEOUT);
        assert!(
            out.status.success(),
            "tmux send-keys {keys:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Types `text` as it is.
    pub fn type_text(&self, text: &str) {
        self.send(text, true);
    }

    /// Presses one key (`Enter`, `a`, `C-u`).
    pub fn key(&self, key: &str) {
        self.send(key, false);
    }

    /// What the session shows now ("" once it has ended).
    pub fn screen(&self) -> String {
        let mut cmd = self.cmd();
        cmd.args(["capture-pane", "-p", "-t", SESSION]);
        let out = run_bounded(cmd, b"", RUN_TIMEOUT);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `texts` and returns it; `poll` sees each
    /// screen first (to answer a prompt that may come on the way). Panics after
    /// [`SCREEN_TIMEOUT`] with the screen and `context()` (logs).
    pub fn wait_for(
        &self,
        what: &str,
        texts: &[&str],
        mut poll: impl FnMut(&Tmux, &str),
        context: impl Fn() -> String,
    ) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            poll(self, &screen);
            assert!(
                Instant::now() < deadline,
                "the program did not show {what} ({texts:?}) within {SCREEN_TIMEOUT:?}; the screen:\n{}\n{}",
                screen.trim_end(),
                context()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the bottom line (the prompt line) starts with `prompt`.
    pub fn wait_prompt(&self, prompt: &str, context: impl Fn() -> String) {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            let last = screen.lines().rev().find(|l| !l.trim().is_empty());
            if last.is_some_and(|l| l.starts_with(prompt)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the program did not prompt {prompt:?} within {SCREEN_TIMEOUT:?}; the screen:\n{}\n{}",
                screen.trim_end(),
                context()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the session has ended (the program quit).
    pub fn wait_gone(&self) {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let mut cmd = self.cmd();
            cmd.args(["has-session", "-t", SESSION]);
            if !run_bounded(cmd, b"", RUN_TIMEOUT).status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the program did not quit within {SCREEN_TIMEOUT:?}; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let mut cmd = self.cmd();
        cmd.arg("kill-server");
        let _ = run_bounded(cmd, b"", Duration::from_secs(10));
    }
}

//! Credentials: argon2id password hashes, login checks that take as long and answer
//! the same whether or not the account exists, and the failed-login limiter that
//! slows guessing per client address and per account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;

use crate::store::{self, Account, Store};

/// argon2id parameters for new hashes: OWASP's lower-memory equivalent of its
/// minimum (m = 7 MiB, t = 5, p = 1), chosen for a Pi: the same work as m = 19 MiB,
/// t = 2 with a third of the memory per login. Hashes made with other parameters
/// still verify with their own.
fn hash_params() -> Params {
    Params::new(7 * 1024, 5, 1, None).unwrap_or_default()
}

/// Hashes a password with argon2id and [`hash_params`], in a pooled memory area.
pub fn hash_password(password: &str) -> Result<String, store::Error> {
    let bad = |e: argon2::password_hash::Error| {
        store::Error::Invalid(format!("cannot hash password: {e}"))
    };
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(bad)?;
    let params = hash_params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |mem| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, mem)
    })
    .map_err(|e| store::Error::Invalid(format!("cannot hash password: {e}")))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&params).map_err(bad)?,
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out).map_err(bad)?),
    };
    Ok(phc.to_string())
}

/// At most this many argon2 computations run at once, each in a reused memory area
/// (7 MiB with our parameters, 19 MiB for hashes made with the crate defaults). Without it, every login allocates a fresh area
/// on a blocking thread, glibc keeps those in per-thread arenas, and a burst of POP3
/// logins grew the daemon to over 1 GiB (benches/results.md): too much for a Pi.
struct Slots {
    state: Mutex<(usize, Vec<Vec<Block>>)>,
    freed: Condvar,
    max: usize,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| Slots {
        state: Mutex::new((0, Vec::new())),
        freed: Condvar::new(),
        max: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4),
    })
}

/// Runs `f` with a memory area of `blocks` argon2 blocks from the pool, waiting for a
/// free slot when `max` computations are already running.
fn with_memory<R>(blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
    let s = slots();
    let mut buf = {
        let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(b) = st.1.pop() {
                break b;
            }
            if st.0 < s.max {
                st.0 += 1;
                break Vec::new();
            }
            st = s.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    };
    buf.resize(blocks, Block::new());
    let r = f(&mut buf[..blocks]);
    let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
    st.1.push(buf);
    s.freed.notify_one();
    r
}

/// Checks a password against a PHC string (argon2id, argon2i or argon2d), in a pooled
/// memory area; the comparison is constant-time.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::new(h.algorithm.as_str()), Params::try_from(&h))
    else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let ok = with_memory(params.block_count(), |mem| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, mem)
            .is_ok()
    });
    // password_hash's Output compares in constant time.
    ok && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// A hash of a random password, verified against when the account does not exist,
/// so a wrong login costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_password()).unwrap_or_default())
}

/// A random password from an alphabet without look-alike characters.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Checks a login. `login` is a full address, or a bare local part taken to be in
/// `default_domain`. Blocking (argon2): call it through `Store::call`.
/// Returns `Ok(None)` for "no such account or wrong password", never saying which.
pub fn authenticate(
    store: &Store,
    login: &str,
    password: &str,
    default_domain: &str,
) -> store::Result<Option<Account>> {
    let login = if login.contains('@') {
        login.to_string()
    } else {
        format!("{login}@{default_domain}")
    };
    let account = store.read(|r| r.account_by_login(&login))?;
    match account {
        Some(a) if verify_password(&a.password_hash, password) => Ok(Some(a)),
        Some(_) => Ok(None),
        None => {
            let _ = verify_password(dummy_hash(), password);
            Ok(None)
        }
    }
}

/// Per-key failure record.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Slows repeated failed logins per client IP and per account name. Each failure
/// beyond the first `free` doubles the delay before the next answer, up to `max`;
/// a record is forgotten after `window` without failures. Memory is bounded: at most
/// `capacity` keys, the oldest dropped first.
#[derive(Debug)]
pub struct Limiter {
    inner: Mutex<HashMap<String, Failures>>,
    free: u32,
    base: Duration,
    max: Duration,
    window: Duration,
    capacity: usize,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(
            3,
            Duration::from_millis(500),
            Duration::from_secs(16),
            Duration::from_secs(15 * 60),
            10_000,
        )
    }
}

impl Limiter {
    /// A limiter with explicit parameters.
    pub fn new(
        free: u32,
        base: Duration,
        max: Duration,
        window: Duration,
        capacity: usize,
    ) -> Limiter {
        Limiter {
            inner: Mutex::new(HashMap::new()),
            free,
            base,
            max,
            window,
            capacity,
        }
    }

    fn keys(ip: IpAddr, login: Option<&str>) -> Vec<String> {
        // IPv6 clients get a /64 each, as one household's devices share one.
        let ip_key = match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            IpAddr::V6(v6) => format!(
                "ip:{}",
                v6.to_ipv4_mapped()
                    .map(IpAddr::V4)
                    .unwrap_or(IpAddr::V6(v6))
            ),
            v4 => format!("ip:{v4}"),
        };
        let mut v = vec![ip_key];
        if let Some(l) = login {
            v.push(format!("acct:{}", l.trim().to_lowercase()));
        }
        v
    }

    /// How long to wait before answering an attempt from `ip` for `login`.
    pub fn delay(&self, ip: IpAddr, login: Option<&str>, now: Instant) -> Duration {
        let Ok(map) = self.inner.lock() else {
            return self.max;
        };
        Self::keys(ip, login)
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|f| now.saturating_duration_since(f.last) < self.window)
            .map(|f| {
                let over = f.count.saturating_sub(self.free);
                if over == 0 {
                    Duration::ZERO
                } else {
                    self.base
                        .saturating_mul(1u32 << over.min(16).saturating_sub(1))
                        .min(self.max)
                }
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Records a failed attempt.
    pub fn failure(&self, ip: IpAddr, login: Option<&str>, now: Instant) {
        let Ok(mut map) = self.inner.lock() else {
            return;
        };
        if map.len() >= self.capacity {
            let window = self.window;
            map.retain(|_, f| now.saturating_duration_since(f.last) < window);
            while map.len() >= self.capacity {
                let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        for k in Self::keys(ip, login) {
            let e = map.entry(k).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.saturating_duration_since(e.last) >= self.window {
                e.count = 0;
            }
            e.count = e.count.saturating_add(1);
            e.last = now;
        }
    }

    /// Clears the account's record after a successful login (the IP's stays, so a
    /// guesser cannot reset it with their own account).
    pub fn success(&self, login: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(&format!("acct:{}", login.trim().to_lowercase()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("not a hash", "x"));
        assert_eq!(random_password().len(), 20);
    }

    #[test]
    fn concurrent_verifications_share_a_bounded_pool() {
        let h = hash_password("pooled").unwrap();
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    verify_password(&h, if i % 2 == 0 { "pooled" } else { "nope" })
                })
            })
            .collect();
        let results: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|ok| **ok).count(), 6);
        let st = slots().state.lock().unwrap();
        assert!(
            st.0 <= slots().max,
            "areas made {} max {}",
            st.0,
            slots().max
        );
    }

    #[test]
    fn limiter_backs_off_per_ip_and_account() {
        let l = Limiter::new(
            2,
            Duration::from_millis(100),
            Duration::from_secs(1),
            Duration::from_secs(60),
            100,
        );
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.delay(ip, Some("a@x"), t0), Duration::ZERO);
        l.failure(ip, Some("a@x"), t0);
        l.failure(ip, Some("a@x"), t0);
        assert_eq!(l.delay(ip, Some("a@x"), t0), Duration::ZERO);
        l.failure(ip, Some("a@x"), t0);
        assert_eq!(l.delay(ip, None, t0), Duration::from_millis(100));
        l.failure(ip, Some("A@X"), t0);
        assert_eq!(l.delay(ip, None, t0), Duration::from_millis(200));
        // The account is slowed from another address too.
        assert_eq!(l.delay(other, Some("a@x"), t0), Duration::from_millis(200));
        assert_eq!(l.delay(other, Some("b@x"), t0), Duration::ZERO);
        for _ in 0..20 {
            l.failure(ip, Some("a@x"), t0);
        }
        assert_eq!(l.delay(ip, None, t0), Duration::from_secs(1), "capped");
        assert_eq!(
            l.delay(ip, None, t0 + Duration::from_secs(61)),
            Duration::ZERO,
            "forgotten"
        );
        l.success("a@x");
        assert_eq!(l.delay(other, Some("a@x"), t0), Duration::ZERO);
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let l = Limiter::new(
            1,
            Duration::from_millis(1),
            Duration::from_secs(1),
            Duration::from_secs(60),
            50,
        );
        let t0 = Instant::now();
        for i in 0..1000u32 {
            l.failure(
                IpAddr::from(i.to_be_bytes()),
                Some(&format!("u{i}")),
                t0 + Duration::from_millis(i.into()),
            );
        }
        assert!(l.inner.lock().unwrap().len() <= 51);
    }

    #[test]
    fn unknown_account_and_wrong_password_look_alike() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.write(store::Op::CreateAccount {
            address: "a@home.arpa".into(),
            password_hash: hash_password("pw").unwrap(),
        })
        .unwrap();
        assert!(authenticate(&s, "a", "pw", "home.arpa").unwrap().is_some());
        assert!(
            authenticate(&s, "A@HOME.ARPA", "pw", "home.arpa")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            authenticate(&s, "a@home.arpa", "nope", "home.arpa").unwrap(),
            None
        );
        assert_eq!(
            authenticate(&s, "ghost@home.arpa", "pw", "home.arpa").unwrap(),
            None
        );
    }
}

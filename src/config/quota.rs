//! `[quota]`: the limits of every account that has none of its own (`letterbox user quota`
//! sets those). None by default. RFC 9208's STORAGE and MESSAGE resources.

use serde::Deserialize;

use super::{Builder, ConfigError, Size};
use crate::store::Quota;

/// The `[quota]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub(super) struct RawQuota {
    storage: Option<Size>,
    messages: Option<u64>,
}

impl Builder<'_> {
    /// `[quota]`: a storage limit of at least 1 MiB (a smaller one would refuse the first
    /// ordinary message), a message limit of at least 1.
    pub(super) fn quota(&self, raw: RawQuota) -> Result<Quota, ConfigError> {
        let mut q = Quota::default();
        if let Some(Size(bytes)) = raw.storage {
            if bytes < 1 << 20 {
                return Err(self.err(
                    "quota.storage",
                    format!("{bytes} bytes is too small; write a size such as \"2G\""),
                ));
            }
            q.storage = Some(bytes);
        }
        if let Some(n) = raw.messages {
            if n == 0 {
                return Err(self.err("quota.messages", "must be at least 1"));
            }
            q.messages = Some(n);
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn quota_defaults_and_errors() {
        assert_eq!(Config::defaults().quota, crate::store::Quota::default());
        let c = Config::parse("[quota]\nstorage = \"2G\"\nmessages = 100000\n", "t").unwrap();
        assert_eq!(c.quota.storage, Some(2 << 30));
        assert_eq!(c.quota.messages, Some(100_000));
        let e = Config::parse("[quota]\nstorage = 1000\n", "t").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("quota.storage")));
        let e = Config::parse("\n[quota]\nmessages = 0\n", "t").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("quota.messages"))
        );
    }
}

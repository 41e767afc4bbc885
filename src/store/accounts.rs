//! Accounts, their addresses and aliases. Addresses are looked up case-insensitively
//! (the domain is case-insensitive by RFC 5321 §2.4; we treat the local part so too,
//! as users expect), with `+detail` sub-addressing and `@domain` catch-alls.

use redb::{ReadableTable, WriteTransaction};

use super::records::{Account, AddressEntry, DEFAULT_MAILBOXES, dec, enc};
use super::schema::{ACCOUNTS, ADDRESSES, MAILBOX_NAMES, SUBSCRIPTIONS};
use super::{Change, Error, Reader, Result, mailboxes, migrate};

/// Splits `local@domain` (the last `@` separates; RFC 5321 §4.1.2).
pub fn split_address(addr: &str) -> Option<(&str, &str)> {
    let (l, d) = addr.rsplit_once('@')?;
    Some((l, d))
}

/// Normalises an address for lookup: trimmed, lowercased, `local@domain` with both
/// parts non-empty, or `@domain` for a catch-all. Refuses whitespace, control
/// characters and angle brackets.
pub fn normalize_address(addr: &str) -> Result<String> {
    let a = addr.trim();
    let bad = || Error::Invalid(format!("invalid address {a:?}"));
    if a.is_empty()
        || a.len() > 254
        || a.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Err(bad());
    }
    let (l, d) = split_address(a).ok_or_else(bad)?;
    if d.is_empty() || d.starts_with('.') || d.ends_with('.') || d.contains("..") || l.len() > 64 {
        return Err(bad());
    }
    Ok(format!("{}@{}", l.to_lowercase(), d.to_ascii_lowercase()))
}

fn next_id(tx: &WriteTransaction, key: &str) -> Result<u64> {
    let id = migrate::get_meta_w(tx, key)? + 1;
    migrate::set_meta(tx, key, id)?;
    Ok(id)
}

pub(super) fn account_by_address_w(tx: &WriteTransaction, address: &str) -> Result<Account> {
    let key = normalize_address(address)?;
    let entry: AddressEntry = {
        let t = tx.open_table(ADDRESSES)?;
        let v = t
            .get(key.as_str())?
            .ok_or_else(|| Error::NotFound(format!("account {address}")))?;
        dec(v.value())?
    };
    if entry.alias {
        return Err(Error::NotFound(format!(
            "account {address} (it is an alias)"
        )));
    }
    let t = tx.open_table(ACCOUNTS)?;
    let v = t
        .get(entry.account)?
        .ok_or_else(|| Error::NotFound(format!("account {address}")))?;
    dec(v.value())
}

pub(super) fn create(
    tx: &WriteTransaction,
    address: &str,
    hash: &str,
    changes: &mut Vec<Change>,
) -> Result<u64> {
    let key = normalize_address(address)?;
    if key.starts_with('@') {
        return Err(Error::Invalid("an account needs a local part".into()));
    }
    if tx.open_table(ADDRESSES)?.get(key.as_str())?.is_some() {
        return Err(Error::Exists(format!("address {address}")));
    }
    let id = next_id(tx, "next_account")?;
    let acct = Account {
        id,
        address: address.trim().to_string(),
        password_hash: hash.to_string(),
        created: super::now_unix(),
    };
    tx.open_table(ACCOUNTS)?
        .insert(id, enc(&acct)?.as_slice())?;
    tx.open_table(ADDRESSES)?.insert(
        key.as_str(),
        enc(&AddressEntry {
            account: id,
            alias: false,
        })?
        .as_slice(),
    )?;
    for (name, special) in DEFAULT_MAILBOXES {
        mailboxes::create(tx, id, name, special, changes)?;
        mailboxes::subscribe(tx, id, name, true)?;
    }
    changes.push(Change::AccountsChanged);
    Ok(id)
}

pub(super) fn delete(
    tx: &WriteTransaction,
    address: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let acct = account_by_address_w(tx, address)?;
    // Addresses and aliases pointing at the account.
    let mut gone = Vec::new();
    for item in tx.open_table(ADDRESSES)?.iter()? {
        let (k, v) = item?;
        let e: AddressEntry = dec(v.value())?;
        if e.account == acct.id {
            gone.push(k.value().to_string());
        }
    }
    let mut t = tx.open_table(ADDRESSES)?;
    for k in gone {
        t.remove(k.as_str())?;
    }
    drop(t);
    let names: Vec<String> = {
        let t = tx.open_table(MAILBOX_NAMES)?;
        let r = t.range((acct.id, "")..(acct.id + 1, ""))?;
        r.map(|i| i.map(|(k, _)| k.value().1.to_string()))
            .collect::<std::result::Result<_, _>>()?
    };
    for n in names {
        mailboxes::delete_any(tx, acct.id, &n, changes)?;
    }
    let subs: Vec<String> = {
        let t = tx.open_table(SUBSCRIPTIONS)?;
        let r = t.range((acct.id, "")..(acct.id + 1, ""))?;
        r.map(|i| i.map(|(k, _)| k.value().1.to_string()))
            .collect::<std::result::Result<_, _>>()?
    };
    let mut t = tx.open_table(SUBSCRIPTIONS)?;
    for s in subs {
        t.remove((acct.id, s.as_str()))?;
    }
    tx.open_table(ACCOUNTS)?.remove(acct.id)?;
    super::quota::forget(tx, acct.id)?;
    super::imports::forget(tx, acct.id)?;
    changes.push(Change::AccountsChanged);
    Ok(())
}

pub(super) fn set_password(tx: &WriteTransaction, address: &str, hash: &str) -> Result<()> {
    let mut acct = account_by_address_w(tx, address)?;
    acct.password_hash = hash.to_string();
    tx.open_table(ACCOUNTS)?
        .insert(acct.id, enc(&acct)?.as_slice())?;
    Ok(())
}

pub(super) fn add_alias(
    tx: &WriteTransaction,
    alias: &str,
    target: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let key = normalize_address(alias)?;
    let target_key = normalize_address(target)?;
    let mut t = tx.open_table(ADDRESSES)?;
    if t.get(key.as_str())?.is_some() {
        return Err(Error::Exists(format!("address {alias}")));
    }
    let entry: AddressEntry = match t.get(target_key.as_str())? {
        Some(v) => dec(v.value())?,
        None => return Err(Error::NotFound(format!("account {target}"))),
    };
    t.insert(
        key.as_str(),
        enc(&AddressEntry {
            account: entry.account,
            alias: true,
        })?
        .as_slice(),
    )?;
    changes.push(Change::AccountsChanged);
    Ok(())
}

pub(super) fn delete_alias(
    tx: &WriteTransaction,
    alias: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let key = normalize_address(alias)?;
    let mut t = tx.open_table(ADDRESSES)?;
    let entry: AddressEntry = match t.get(key.as_str())? {
        Some(v) => dec(v.value())?,
        None => return Err(Error::NotFound(format!("alias {alias}"))),
    };
    if !entry.alias {
        return Err(Error::Invalid(format!(
            "{alias} is an account's primary address; use `user del`"
        )));
    }
    t.remove(key.as_str())?;
    changes.push(Change::AccountsChanged);
    Ok(())
}

impl Reader {
    /// All accounts, by id.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        let t = self.tx().open_table(ACCOUNTS)?;
        t.iter()?.map(|i| dec(i?.1.value())).collect()
    }

    /// An account by id.
    pub fn account(&self, id: u64) -> Result<Option<Account>> {
        let t = self.tx().open_table(ACCOUNTS)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    /// The account whose primary address is `login` (the login name).
    pub fn account_by_login(&self, login: &str) -> Result<Option<Account>> {
        let Ok(key) = normalize_address(login) else {
            return Ok(None);
        };
        let t = self.tx().open_table(ADDRESSES)?;
        let Some(v) = t.get(key.as_str())? else {
            return Ok(None);
        };
        let e: AddressEntry = dec(v.value())?;
        if e.alias {
            return Ok(None);
        }
        self.account(e.account)
    }

    /// Who receives mail for `addr`: exact address, then without `+detail`
    /// (sub-addressing, as Postfix `recipient_delimiter = +`), then the domain's
    /// catch-all. Returns the account id.
    pub fn resolve(&self, addr: &str) -> Result<Option<u64>> {
        let Ok(key) = normalize_address(addr) else {
            return Ok(None);
        };
        let t = self.tx().open_table(ADDRESSES)?;
        let look = |k: &str| -> Result<Option<u64>> {
            Ok(match t.get(k)? {
                Some(v) => Some(dec::<AddressEntry>(v.value())?.account),
                None => None,
            })
        };
        if let Some(a) = look(&key)? {
            return Ok(Some(a));
        }
        let Some((local, domain)) = split_address(&key) else {
            return Ok(None);
        };
        if let Some((base, _detail)) = local.split_once('+')
            && !base.is_empty()
            && let Some(a) = look(&format!("{base}@{domain}"))?
        {
            return Ok(Some(a));
        }
        look(&format!("@{domain}"))
    }

    /// Every alias with the primary address of its account.
    pub fn aliases(&self) -> Result<Vec<(String, String)>> {
        let accts: std::collections::HashMap<u64, String> = self
            .accounts()?
            .into_iter()
            .map(|a| (a.id, a.address))
            .collect();
        let t = self.tx().open_table(ADDRESSES)?;
        let mut out = Vec::new();
        for i in t.iter()? {
            let (k, v) = i?;
            let e: AddressEntry = dec(v.value())?;
            if e.alias {
                out.push((
                    k.value().to_string(),
                    accts.get(&e.account).cloned().unwrap_or_default(),
                ));
            }
        }
        Ok(out)
    }

    /// Every address (normalised) that belongs to the account: its own and its aliases.
    pub fn addresses_of(&self, account: u64) -> Result<Vec<String>> {
        let t = self.tx().open_table(ADDRESSES)?;
        let mut out = Vec::new();
        for i in t.iter()? {
            let (k, v) = i?;
            if dec::<AddressEntry>(v.value())?.account == account {
                out.push(k.value().to_string());
            }
        }
        Ok(out)
    }
}

//! Mailboxes: names with `/` as hierarchy separator, UIDVALIDITY, UIDNEXT,
//! HIGHESTMODSEQ, counters, SPECIAL-USE and subscriptions (RFC 9051 §6.3, RFC 6154).

use redb::{ReadableTable, WriteTransaction};

use super::records::{Mailbox, SpecialUse, dec, enc};
use super::schema::{MAILBOX_NAMES, MAILBOXES, MESSAGES, SUBSCRIPTIONS};
use super::{Change, Error, Reader, Result, migrate};

/// Hierarchy separator (RFC 9051 §5.1.1).
pub const SEPARATOR: char = '/';

/// Normalises and validates a mailbox name: `INBOX` in any case becomes `INBOX`
/// (RFC 9051 §5.1), components are non-empty, no wildcards or control characters.
pub fn normalize_name(name: &str) -> Result<String> {
    let bad = |why: &str| Error::Invalid(format!("invalid mailbox name {name:?}: {why}"));
    if name.is_empty() || name.len() > 512 {
        return Err(bad("length"));
    }
    if name.chars().any(|c| c.is_control() || c == '*' || c == '%') {
        return Err(bad("forbidden character"));
    }
    if name.split(SEPARATOR).any(str::is_empty) {
        return Err(bad("empty hierarchy level"));
    }
    let (first, rest) = match name.split_once(SEPARATOR) {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    Ok(match (first.eq_ignore_ascii_case("INBOX"), rest) {
        (true, None) => "INBOX".to_string(),
        (true, Some(r)) => format!("INBOX/{r}"),
        (false, _) => name.to_string(),
    })
}

pub(super) fn get_w(tx: &WriteTransaction, id: u64) -> Result<Mailbox> {
    let t = tx.open_table(MAILBOXES)?;
    let v = t
        .get(id)?
        .ok_or_else(|| Error::NotFound(format!("mailbox {id}")))?;
    dec(v.value())
}

pub(super) fn put(tx: &WriteTransaction, mb: &Mailbox) -> Result<()> {
    tx.open_table(MAILBOXES)?
        .insert(mb.id, enc(mb)?.as_slice())?;
    Ok(())
}

pub(super) fn id_by_name_w(tx: &WriteTransaction, account: u64, name: &str) -> Result<Option<u64>> {
    let t = tx.open_table(MAILBOX_NAMES)?;
    Ok(t.get((account, name))?.map(|v| v.value()))
}

fn new_uidvalidity(tx: &WriteTransaction) -> Result<u32> {
    let last = migrate::get_meta_w(tx, "last_uidvalidity")?;
    let now = u64::try_from(super::now_unix()).unwrap_or(1);
    let v = now.max(last + 1) & 0xFFFF_FFFF;
    let v = if v == 0 { 1 } else { v };
    migrate::set_meta(tx, "last_uidvalidity", v)?;
    Ok(v as u32)
}

fn create_one(
    tx: &WriteTransaction,
    account: u64,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<u64> {
    let id = migrate::get_meta_w(tx, "next_mailbox")? + 1;
    migrate::set_meta(tx, "next_mailbox", id)?;
    let mb = Mailbox {
        id,
        account,
        name: name.to_string(),
        uidvalidity: new_uidvalidity(tx)?,
        uidnext: 1,
        highestmodseq: 1,
        special_use,
        exists: 0,
        unseen: 0,
        size: 0,
    };
    put(tx, &mb)?;
    tx.open_table(MAILBOX_NAMES)?.insert((account, name), id)?;
    Ok(id)
}

pub(super) fn create(
    tx: &WriteTransaction,
    account: u64,
    name: &str,
    special_use: Option<SpecialUse>,
    changes: &mut Vec<Change>,
) -> Result<u64> {
    let name = normalize_name(name)?;
    if id_by_name_w(tx, account, &name)?.is_some() {
        return Err(Error::Exists(format!("mailbox {name}")));
    }
    // RFC 9051 §6.3.4: create missing superior names.
    let parts: Vec<&str> = name.split(SEPARATOR).collect();
    for i in 1..parts.len() {
        let parent = parts[..i].join("/");
        if id_by_name_w(tx, account, &parent)?.is_none() {
            create_one(tx, account, &parent, None)?;
        }
    }
    let id = create_one(tx, account, &name, special_use)?;
    changes.push(Change::MailboxesChanged { account });
    Ok(id)
}

/// Deletes a mailbox and its messages (INBOX too: used when deleting an account).
pub(super) fn delete_any(
    tx: &WriteTransaction,
    account: u64,
    name: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let id = id_by_name_w(tx, account, name)?
        .ok_or_else(|| Error::NotFound(format!("mailbox {name}")))?;
    let rows: Vec<(u32, [u8; 32])> = {
        let t = tx.open_table(MESSAGES)?;
        let r = t.range((id, 0)..=(id, u32::MAX))?;
        let mut v = Vec::new();
        for i in r {
            let (k, val) = i?;
            v.push((k.value().1, dec::<super::MessageRow>(val.value())?.blob));
        }
        v
    };
    {
        let mut t = tx.open_table(MESSAGES)?;
        for (uid, blob) in &rows {
            t.remove((id, *uid))?;
            super::blobs::decref(tx, *blob)?;
        }
    }
    {
        let mut e = tx.open_table(super::schema::EXPUNGED)?;
        let uids: Vec<u32> = e
            .range((id, 0)..=(id, u32::MAX))?
            .map(|i| i.map(|(k, _)| k.value().1))
            .collect::<std::result::Result<_, _>>()?;
        for u in uids {
            e.remove((id, u))?;
        }
    }
    tx.open_table(MAILBOXES)?.remove(id)?;
    tx.open_table(MAILBOX_NAMES)?.remove((account, name))?;
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

pub(super) fn delete(
    tx: &WriteTransaction,
    account: u64,
    name: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let name = normalize_name(name)?;
    if name == "INBOX" {
        return Err(Error::Invalid("INBOX cannot be deleted".into()));
    }
    delete_any(tx, account, &name, changes)
}

pub(super) fn rename(
    tx: &WriteTransaction,
    account: u64,
    from: &str,
    to: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let from = normalize_name(from)?;
    let to = normalize_name(to)?;
    let src = id_by_name_w(tx, account, &from)?
        .ok_or_else(|| Error::NotFound(format!("mailbox {from}")))?;
    if id_by_name_w(tx, account, &to)?.is_some() {
        return Err(Error::Exists(format!("mailbox {to}")));
    }
    if to == from || to.starts_with(&format!("{from}/")) {
        return Err(Error::Invalid("cannot rename a mailbox into itself".into()));
    }
    if from == "INBOX" {
        // RFC 9051 §6.3.6: move every message to the new name; INBOX stays, empty.
        let dst = create(tx, account, &to, None, changes)?;
        let uids: Vec<u32> = {
            let t = tx.open_table(MESSAGES)?;
            t.range((src, 0)..=(src, u32::MAX))?
                .map(|i| i.map(|(k, _)| k.value().1))
                .collect::<std::result::Result<_, _>>()?
        };
        super::messages::copy(tx, src, &uids, dst, true, super::Quota::default(), changes)?;
        return Ok(());
    }
    // Rename the mailbox and its children; messages are keyed by id, so they stay.
    let victims: Vec<(String, u64)> = {
        let t = tx.open_table(MAILBOX_NAMES)?;
        let mut v = Vec::new();
        for i in t.range((account, "")..(account + 1, ""))? {
            let (k, id) = i?;
            let n = k.value().1.to_string();
            if n == from || n.starts_with(&format!("{from}/")) {
                v.push((n, id.value()));
            }
        }
        v
    };
    // Create missing parents of the new name.
    let parts: Vec<&str> = to.split(SEPARATOR).collect();
    for i in 1..parts.len() {
        let parent = parts[..i].join("/");
        if id_by_name_w(tx, account, &parent)?.is_none() {
            create_one(tx, account, &parent, None)?;
        }
    }
    for (old, id) in victims {
        let new = format!("{to}{}", &old[from.len()..]);
        let mut mb = get_w(tx, id)?;
        mb.name = new.clone();
        put(tx, &mb)?;
        let mut names = tx.open_table(MAILBOX_NAMES)?;
        names.remove((account, old.as_str()))?;
        names.insert((account, new.as_str()), id)?;
        drop(names);
        let mut subs = tx.open_table(SUBSCRIPTIONS)?;
        if subs.remove((account, old.as_str()))?.is_some() {
            subs.insert((account, new.as_str()), ())?;
        }
    }
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

pub(super) fn subscribe(tx: &WriteTransaction, account: u64, name: &str, on: bool) -> Result<()> {
    let name = normalize_name(name)?;
    let mut t = tx.open_table(SUBSCRIPTIONS)?;
    if on {
        t.insert((account, name.as_str()), ())?;
    } else {
        t.remove((account, name.as_str()))?;
    }
    Ok(())
}

impl Reader {
    /// Every mailbox's id and UIDNEXT (for the `\Recent` marks at open).
    pub fn all_uidnext(&self) -> Result<Vec<(u64, u32)>> {
        let boxes = self.tx().open_table(MAILBOXES)?;
        let mut out = Vec::new();
        for i in boxes.iter()? {
            let (id, v) = i?;
            let mb: Mailbox = dec(v.value())?;
            out.push((id.value(), mb.uidnext));
        }
        Ok(out)
    }

    /// The account's mailboxes, sorted by name.
    pub fn mailboxes(&self, account: u64) -> Result<Vec<Mailbox>> {
        let names = self.tx().open_table(MAILBOX_NAMES)?;
        let boxes = self.tx().open_table(MAILBOXES)?;
        let mut out = Vec::new();
        for i in names.range((account, "")..(account + 1, ""))? {
            let (_, id) = i?;
            if let Some(v) = boxes.get(id.value())? {
                out.push(dec(v.value())?);
            }
        }
        Ok(out)
    }

    /// A mailbox by name (normalised).
    pub fn mailbox(&self, account: u64, name: &str) -> Result<Option<Mailbox>> {
        let Ok(name) = normalize_name(name) else {
            return Ok(None);
        };
        let names = self.tx().open_table(MAILBOX_NAMES)?;
        let Some(id) = names.get((account, name.as_str()))? else {
            return Ok(None);
        };
        self.mailbox_by_id(id.value())
    }

    /// A mailbox by id.
    pub fn mailbox_by_id(&self, id: u64) -> Result<Option<Mailbox>> {
        let t = self.tx().open_table(MAILBOXES)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    /// Subscribed names.
    pub fn subscriptions(&self, account: u64) -> Result<Vec<String>> {
        let t = self.tx().open_table(SUBSCRIPTIONS)?;
        t.range((account, "")..(account + 1, ""))?
            .map(|i| i.map(|(k, _)| k.value().1.to_string()).map_err(Into::into))
            .collect()
    }
}

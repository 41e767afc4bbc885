//! Message rows: UID assignment, flags and keywords with modseq (RFC 7162), expunge
//! with remembered UIDs for QRESYNC VANISHED, COPY and MOVE (RFC 4315, RFC 6851).

use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};

use super::quota::{self, Quota};
use super::records::SpecialUse;
use super::records::{MessageRow, dec, enc, flag};
use super::schema::{EXPUNGED, MESSAGES};
use super::{
    Change, Error, FlagMode, MailboxSel, NewMessage, Output, Reader, Result, Target, blobs,
    mailboxes, spam,
};

fn resolve_target(tx: &WriteTransaction, t: &Target) -> Result<u64> {
    match &t.mailbox {
        MailboxSel::Id(id) => {
            let mb = mailboxes::get_w(tx, *id)?;
            if mb.account != t.account {
                return Err(Error::Invalid("mailbox belongs to another account".into()));
            }
            Ok(*id)
        }
        MailboxSel::Inbox => mailboxes::id_by_name_w(tx, t.account, "INBOX")?
            .ok_or_else(|| Error::NotFound(format!("INBOX of account {}", t.account))),
        MailboxSel::Junk => {
            let names = tx.open_table(super::schema::MAILBOX_NAMES)?;
            let mut found = None;
            for i in names.range((t.account, "")..(t.account + 1, ""))? {
                let id = i?.1.value();
                if mailboxes::get_w(tx, id)?.special_use == Some(SpecialUse::Junk) {
                    found = Some(id);
                    break;
                }
            }
            drop(names);
            match found {
                Some(id) => Ok(id),
                None => resolve_target(
                    tx,
                    &Target {
                        account: t.account,
                        mailbox: MailboxSel::Inbox,
                    },
                ),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn deliver(
    tx: &WriteTransaction,
    msg: &Arc<NewMessage>,
    targets: &[Target],
    flags: u8,
    keywords: &[String],
    internal_date: i64,
    delivered: bool,
    default_quota: Quota,
    changes: &mut Vec<Change>,
) -> Result<Vec<(u64, u32, u32)>> {
    if targets.is_empty() {
        return Err(Error::Invalid("no recipients".into()));
    }
    let mut ids = Vec::with_capacity(targets.len());
    // (account, copies it receives): each copy counts against its quota.
    let mut per_account: Vec<(u64, u64)> = Vec::new();
    for t in targets {
        let id = resolve_target(tx, t)?;
        // Two aliases of one account: store once per mailbox.
        if !ids.contains(&id) {
            ids.push(id);
            match per_account.iter_mut().find(|(a, _)| *a == t.account) {
                Some((_, n)) => *n += 1,
                None => per_account.push((t.account, 1)),
            }
        }
    }
    // RFC 9208 §4: all or nothing; the op fails before anything is written.
    let size = msg.raw.len() as u64;
    for (account, n) in per_account {
        quota::check(tx, account, size.saturating_mul(n), n, default_quota)?;
    }
    blobs::add_ref(tx, msg, ids.len() as u64)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let mut mb = mailboxes::get_w(tx, id)?;
        let uid = mb.uidnext;
        if uid == u32::MAX {
            return Err(Error::Invalid(format!(
                "mailbox {} has run out of UIDs",
                mb.name
            )));
        }
        mb.uidnext += 1;
        mb.highestmodseq += 1;
        mb.exists += 1;
        mb.size += msg.raw.len() as u64;
        if flags & flag::SEEN == 0 {
            mb.unseen += 1;
        }
        let row = MessageRow {
            blob: msg.hash,
            flags,
            keywords: keywords.to_vec(),
            internal_date,
            size: msg.raw.len() as u64,
            modseq: mb.highestmodseq,
        };
        tx.open_table(MESSAGES)?
            .insert((id, uid), enc(&row)?.as_slice())?;
        mailboxes::put(tx, &mb)?;
        changes.push(Change::MessageAdded {
            account: mb.account,
            mailbox: id,
            uid,
            modseq: row.modseq,
            delivered,
        });
        out.push((id, mb.uidvalidity, uid));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn set_flags(
    tx: &WriteTransaction,
    mailbox: u64,
    uids: &[u32],
    mode: FlagMode,
    flags: u8,
    keywords: &[String],
    unchanged_since: Option<u64>,
    changes: &mut Vec<Change>,
) -> Result<Output> {
    let mut mb = mailboxes::get_w(tx, mailbox)?;
    let modseq = mb.highestmodseq + 1;
    let mut t = tx.open_table(MESSAGES)?;
    let mut rows = Vec::new();
    let mut modified = Vec::new();
    let mut changed = Vec::new();
    let (mut to_spam, mut to_ham) = (Vec::new(), Vec::new());
    for &uid in uids {
        let Some(v) = t.get((mailbox, uid))? else {
            continue;
        };
        let mut row: MessageRow = dec(v.value())?;
        drop(v);
        if let Some(since) = unchanged_since
            && row.modseq > since
        {
            modified.push(uid);
            continue;
        }
        let (old_flags, old_kw) = (row.flags, row.keywords.clone());
        match mode {
            FlagMode::Replace => {
                row.flags = flags;
                row.keywords = keywords.to_vec();
            }
            FlagMode::Add => {
                row.flags |= flags;
                for k in keywords {
                    if !row.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                        row.keywords.push(k.clone());
                    }
                }
            }
            FlagMode::Remove => {
                row.flags &= !flags;
                row.keywords
                    .retain(|x| !keywords.iter().any(|k| k.eq_ignore_ascii_case(x)));
            }
        }
        if row.flags != old_flags || row.keywords != old_kw {
            let was_seen = old_flags & flag::SEEN != 0;
            let now_seen = row.flags & flag::SEEN != 0;
            if was_seen && !now_seen {
                mb.unseen += 1;
            } else if !was_seen && now_seen {
                mb.unseen = mb.unseen.saturating_sub(1);
            }
            row.modseq = modseq;
            t.insert((mailbox, uid), enc(&row)?.as_slice())?;
            changed.push(uid);
            match junk_keyword_change(old_flags, &old_kw, row.flags, &row.keywords) {
                Some(spam::Class::Spam) => to_spam.push(row.blob),
                Some(spam::Class::Ham) => to_ham.push(row.blob),
                None => {}
            }
        }
        rows.push((uid, row.flags, row.keywords, row.modseq));
    }
    drop(t);
    spam::record(tx, mb.account, &to_spam, spam::Class::Spam)?;
    spam::record(tx, mb.account, &to_ham, spam::Class::Ham)?;
    if !changed.is_empty() {
        mb.highestmodseq = modseq;
        mailboxes::put(tx, &mb)?;
        changes.push(Change::FlagsChanged {
            account: mb.account,
            mailbox,
            uids: changed,
            modseq,
        });
    }
    Ok(Output::Flags { rows, modified })
}

/// Keywords that mark junk (`$Junk`, set by Thunderbird and Apple Mail; `Junk` by older
/// clients) and wanted mail (`$NotJunk`, `NonJunk`).
const JUNK: &[&str] = &["$junk", "junk"];
const NOT_JUNK: &[&str] = &["$notjunk", "notjunk", "nonjunk", "$nonjunk"];

/// How a flag change trains the learning filter: a junk keyword newly set trains spam, a
/// not-junk keyword or `\Answered` newly set trains ham.
fn junk_keyword_change(
    old_flags: u8,
    old_kw: &[String],
    flags: u8,
    kw: &[String],
) -> Option<spam::Class> {
    let added = |list: &[&str]| {
        kw.iter().any(|k| {
            list.iter().any(|j| k.eq_ignore_ascii_case(j))
                && !old_kw.iter().any(|o| o.eq_ignore_ascii_case(k))
        })
    };
    if added(JUNK) {
        Some(spam::Class::Spam)
    } else if added(NOT_JUNK) || (flags & flag::ANSWERED != 0 && old_flags & flag::ANSWERED == 0) {
        Some(spam::Class::Ham)
    } else {
        None
    }
}

pub(super) fn expunge(
    tx: &WriteTransaction,
    mailbox: u64,
    uids: Option<&[u32]>,
    changes: &mut Vec<Change>,
) -> Result<Vec<u32>> {
    let mut mb = mailboxes::get_w(tx, mailbox)?;
    let victims: Vec<(u32, MessageRow)> = {
        let t = tx.open_table(MESSAGES)?;
        match uids {
            None => {
                let mut v = Vec::new();
                for i in t.range((mailbox, 0)..=(mailbox, u32::MAX))? {
                    let (k, val) = i?;
                    let row: MessageRow = dec(val.value())?;
                    if row.flags & flag::DELETED != 0 {
                        v.push((k.value().1, row));
                    }
                }
                v
            }
            Some(list) => {
                let mut list = list.to_vec();
                list.sort_unstable();
                list.dedup();
                let mut v = Vec::new();
                for uid in list {
                    if let Some(val) = t.get((mailbox, uid))? {
                        v.push((uid, dec(val.value())?));
                    }
                }
                v
            }
        }
    };
    if victims.is_empty() {
        return Ok(Vec::new());
    }
    let modseq = mb.highestmodseq + 1;
    let mut t = tx.open_table(MESSAGES)?;
    let mut e = tx.open_table(EXPUNGED)?;
    let mut out = Vec::with_capacity(victims.len());
    for (uid, row) in victims {
        t.remove((mailbox, uid))?;
        e.insert((mailbox, uid), modseq)?;
        blobs::decref(tx, row.blob)?;
        mb.exists = mb.exists.saturating_sub(1);
        mb.size = mb.size.saturating_sub(row.size);
        if row.flags & flag::SEEN == 0 {
            mb.unseen = mb.unseen.saturating_sub(1);
        }
        out.push(uid);
    }
    drop((t, e));
    mb.highestmodseq = modseq;
    mailboxes::put(tx, &mb)?;
    changes.push(Change::Expunged {
        account: mb.account,
        mailbox,
        uids: out.clone(),
        modseq,
    });
    Ok(out)
}

pub(super) fn copy(
    tx: &WriteTransaction,
    from: u64,
    uids: &[u32],
    to: u64,
    remove: bool,
    default_quota: Quota,
    changes: &mut Vec<Change>,
) -> Result<Output> {
    // RFC 6851 §3.3 allows MOVE into the selected mailbox itself (Dovecot does it): each
    // message gets a new UID, the old one is expunged, and COPYUID maps the two.
    let src = mailboxes::get_w(tx, from)?;
    let mut dst = mailboxes::get_w(tx, to)?;
    if src.account != dst.account {
        return Err(Error::Invalid("mailboxes of different accounts".into()));
    }
    let mut list = uids.to_vec();
    list.sort_unstable();
    list.dedup();
    let rows: Vec<(u32, MessageRow)> = {
        let t = tx.open_table(MESSAGES)?;
        let mut v = Vec::new();
        for uid in list {
            if let Some(val) = t.get((from, uid))? {
                v.push((uid, dec(val.value())?));
            }
        }
        v
    };
    // A COPY adds to the account's usage; a MOVE within it does not (quota.rs).
    if !remove {
        let bytes = rows.iter().map(|(_, r)| r.size).sum();
        quota::check(tx, dst.account, bytes, rows.len() as u64, default_quota)?;
    }
    let mut pairs = Vec::with_capacity(rows.len());
    let blobs_moved: Vec<[u8; 32]> = rows.iter().map(|(_, r)| r.blob).collect();
    for (uid, mut row) in rows {
        if dst.uidnext == u32::MAX {
            return Err(Error::Invalid(format!(
                "mailbox {} has run out of UIDs",
                dst.name
            )));
        }
        let new_uid = dst.uidnext;
        dst.uidnext += 1;
        dst.highestmodseq += 1;
        dst.exists += 1;
        dst.size += row.size;
        if row.flags & flag::SEEN == 0 {
            dst.unseen += 1;
        }
        row.modseq = dst.highestmodseq;
        blobs::incref(tx, row.blob)?;
        tx.open_table(MESSAGES)?
            .insert((to, new_uid), enc(&row)?.as_slice())?;
        changes.push(Change::MessageAdded {
            account: dst.account,
            mailbox: to,
            uid: new_uid,
            modseq: row.modseq,
            delivered: false,
        });
        pairs.push((uid, new_uid));
    }
    mailboxes::put(tx, &dst)?;
    // The learning junk filter (spam.rs): into Junk trains spam; out of Junk (but not
    // into Trash) trains ham. Queued in this commit, applied in the background.
    let class = match (src.special_use, dst.special_use) {
        (Some(SpecialUse::Junk), Some(SpecialUse::Junk)) => None,
        (_, Some(SpecialUse::Junk)) => Some(spam::Class::Spam),
        (Some(SpecialUse::Junk), Some(SpecialUse::Trash)) => None,
        (Some(SpecialUse::Junk), _) => Some(spam::Class::Ham),
        _ => None,
    };
    if let Some(class) = class {
        spam::record(tx, dst.account, &blobs_moved, class)?;
    }
    if remove && !pairs.is_empty() {
        let src_uids: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        expunge(tx, from, Some(&src_uids), changes)?;
    }
    Ok(Output::Copied {
        uidvalidity: dst.uidvalidity,
        pairs,
    })
}

impl Reader {
    /// Every message of a mailbox in UID order.
    pub fn messages(&self, mailbox: u64) -> Result<Vec<(u32, MessageRow)>> {
        let t = self.tx().open_table(MESSAGES)?;
        let mut out = Vec::new();
        for i in t.range((mailbox, 0)..=(mailbox, u32::MAX))? {
            let (k, v) = i?;
            out.push((k.value().1, dec(v.value())?));
        }
        Ok(out)
    }

    /// One message.
    pub fn message(&self, mailbox: u64, uid: u32) -> Result<Option<MessageRow>> {
        let t = self.tx().open_table(MESSAGES)?;
        t.get((mailbox, uid))?.map(|v| dec(v.value())).transpose()
    }

    /// UIDs expunged after `modseq` (RFC 7162 §3.2.5.2 VANISHED (EARLIER)).
    pub fn expunged_since(&self, mailbox: u64, modseq: u64) -> Result<Vec<u32>> {
        let t = self.tx().open_table(EXPUNGED)?;
        let mut out = Vec::new();
        for i in t.range((mailbox, 0)..=(mailbox, u32::MAX))? {
            let (k, v) = i?;
            if v.value() > modseq {
                out.push(k.value().1);
            }
        }
        Ok(out)
    }
}

//! Mailbox commands (RFC 9051 §6.3): SELECT/EXAMINE (with CONDSTORE and QRESYNC),
//! CREATE, SUBSCRIBE, LIST/LSUB (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE), STATUS and
//! APPEND. DELETE and RENAME are one store op each and live in `Session::run`.

use super::super::backend::Backend;
use super::super::command::{
    AppendMessage, ListReturn, ListSelect, Mailbox, SelectParams, SequenceSet, StatusItem,
};
use super::super::fetch;
use super::super::response::{
    Code, Data, FetchItem, ListData, ListExtended, MailboxAttr, StatusResponse,
};
use super::view::flags_with_recent;
use super::{Done, Fail, Msg, Session, State, View, no};
use crate::store::records::{Mailbox as StoreMailbox, SpecialUse, flag};
use crate::store::{self, Appended, NewMessage, Op, Output};

impl Session {
    pub(super) fn lookup(&self, b: &dyn Backend, name: &Mailbox) -> Result<StoreMailbox, Fail> {
        b.mailbox(self.account_id()?, &normalize(name))?
            .ok_or_else(|| no(Code::NonExistent, "No such mailbox"))
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.2 (SELECT), §6.3.3 (EXAMINE),
    /// RFC 7162 §3.1.8 (CONDSTORE), §3.2.5 (QRESYNC).
    pub(super) fn select(
        &mut self,
        b: &dyn Backend,
        name: &Mailbox,
        params: &SelectParams,
        read_only: bool,
    ) -> Done {
        let account = self.account_id()?;
        if let State::Selected { .. } = self.state {
            // RFC 9051 §7.1: CLOSED marks where the old mailbox's responses end.
            self.state = State::Authenticated { account };
            self.status(StatusResponse::ok(
                None,
                Some(Code::Closed),
                "Previous mailbox closed",
            ));
        }
        if params.qresync.is_some() && !self.enabled.qresync {
            return Err(Fail::Bad("QRESYNC must be enabled first".into()));
        }
        if params.condstore {
            self.enabled.condstore = true;
        }
        let mb = self.lookup(b, name)?;
        let rows = b.messages(mb.id)?;
        // RFC 3501 §2.3.2, §6.3.1: SELECT claims the messages no session has seen as
        // \Recent yet; EXAMINE shows them without claiming (no permanent state change,
        // §6.3.2); an IMAP4rev2 session never sees \Recent (RFC 9051 removed it).
        let first_recent = if self.enabled.rev2 {
            u32::MAX
        } else if read_only {
            b.recent_mark(mb.id)
        } else {
            let newest = rows.last().map_or(0, |(u, _)| u.saturating_add(1));
            b.claim_recent(mb.id, mb.uidnext.max(newest))
        };
        let msgs: Vec<Msg> = rows
            .into_iter()
            .map(|(uid, r)| Msg {
                uid,
                flags: r.flags,
                keywords: r.keywords.into_boxed_slice(),
                modseq: r.modseq,
                gone: false,
                recent: uid >= first_recent,
            })
            .collect();
        let mut keywords: Vec<String> = Vec::new();
        for m in &msgs {
            for k in &m.keywords {
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.clone());
                }
            }
        }
        let view = View {
            mailbox: mb.id,
            read_only,
            uidnext: mb.uidnext,
            highestmodseq: mb.highestmodseq,
            msgs,
            saved: Vec::new(),
            contexts: Vec::new(),
            keywords,
        };
        let (flags, permanent) = view.flag_responses();
        self.send(flags);
        self.send(Data::Exists(view.msgs.len() as u32));
        if !self.enabled.rev2 {
            self.send(Data::Recent(view.recent()));
            // RFC 3501 §6.3.1: the first unseen message, when there is one (RFC 9051
            // removed it from IMAP4rev2).
            if let Some(i) = view.msgs.iter().position(|m| m.flags & flag::SEEN == 0) {
                self.status(StatusResponse::ok(
                    None,
                    Some(Code::Unseen(i as u32 + 1)),
                    "First unseen",
                ));
            }
        }
        self.status(StatusResponse::ok(
            None,
            Some(Code::UidValidity(mb.uidvalidity)),
            "UIDs valid",
        ));
        self.status(StatusResponse::ok(
            None,
            Some(Code::UidNext(mb.uidnext)),
            "Predicted next UID",
        ));
        self.status(permanent);
        self.status(StatusResponse::ok(
            None,
            Some(Code::HighestModSeq(mb.highestmodseq)),
            "Highest",
        ));
        if self.enabled.rev2 {
            // RFC 9051 §6.3.2: a LIST response for the selected mailbox.
            let boxes = b.mailboxes(account)?;
            let prefix = format!("{}/", mb.name);
            let mut attributes = vec![if boxes.iter().any(|o| o.name.starts_with(&prefix)) {
                MailboxAttr::HasChildren
            } else {
                MailboxAttr::HasNoChildren
            }];
            attributes.extend(mb.special_use.map(special_attr));
            self.send(Data::List(ListData {
                attributes,
                delimiter: Some('/'),
                mailbox: Mailbox::new(mb.name.clone()),
                extended: vec![],
            }));
        }
        if let Some(q) = &params.qresync
            && q.uid_validity == mb.uidvalidity
        {
            // RFC 7162 §3.2.5.1: what changed since the client's modseq.
            let known = q.known_uids.clone();
            let last = view.last_uid().max(mb.uidnext.saturating_sub(1));
            let vanished: Vec<u32> = b
                .expunged_since(mb.id, q.mod_seq)?
                .into_iter()
                .filter(|u| known.as_ref().is_none_or(|k| k.contains(*u, last)))
                .collect();
            if !vanished.is_empty() {
                self.send(Data::Vanished {
                    earlier: true,
                    uids: SequenceSet::from_sorted(&vanished),
                });
            }
            for (i, m) in view.msgs.iter().enumerate() {
                if m.modseq > q.mod_seq {
                    let items = vec![
                        FetchItem::Uid(m.uid),
                        FetchItem::Flags(flags_with_recent(m.flags, &m.keywords, m.recent)),
                        FetchItem::ModSeq(m.modseq),
                    ];
                    self.send(Data::Fetch {
                        seq: i as u32 + 1,
                        items,
                    });
                }
            }
        }
        self.state = State::Selected {
            account,
            view: Box::new(view),
        };
        if read_only {
            Ok((Some(Code::ReadOnly), "EXAMINE completed"))
        } else {
            Ok((Some(Code::ReadWrite), "SELECT completed"))
        }
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.4, RFC 6154 §3 (USE).
    pub(super) fn create(&mut self, b: &dyn Backend, name: &Mailbox, uses: &[String]) -> Done {
        let special_use = match uses {
            [] => None,
            [one] => Some(
                parse_special_use(one)
                    .ok_or_else(|| no(Code::UseAttr, "Unsupported special-use attribute"))?,
            ),
            _ => return Err(no(Code::UseAttr, "At most one special-use attribute")),
        };
        // RFC 9051 §6.3.4: a trailing separator only says the client wants children.
        let raw = name.as_str().trim_end_matches('/');
        let name = store::normalize_name(raw)?;
        if name == "INBOX" {
            return Err(no(Code::AlreadyExists, "INBOX always exists"));
        }
        b.write(Op::CreateMailbox {
            account: self.account_id()?,
            name,
            special_use,
        })?;
        Ok((None, "CREATE completed"))
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.7 / §6.3.8.
    pub(super) fn subscribe(&mut self, b: &dyn Backend, name: &Mailbox, on: bool) -> Done {
        let name = normalize(name);
        if on && b.mailbox(self.account_id()?, &name)?.is_none() {
            return Err(no(Code::NonExistent, "No such mailbox"));
        }
        b.write(Op::Subscribe {
            account: self.account_id()?,
            name,
            on,
        })?;
        Ok((
            None,
            if on {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            },
        ))
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.9, RFC 5258 (LIST-EXTENDED),
    /// RFC 5819 (LIST-STATUS), RFC 6154 (SPECIAL-USE), RFC 3501 §6.3.9 (LSUB).
    pub(super) fn list(
        &mut self,
        b: &dyn Backend,
        selection: &[ListSelect],
        reference: &str,
        patterns: &[String],
        returns: &[ListReturn],
        lsub: bool,
    ) -> Done {
        let account = self.account_id()?;
        if !lsub && patterns.iter().all(String::is_empty) {
            // RFC 9051 §6.3.9: an empty pattern asks for the delimiter.
            self.send(Data::List(ListData {
                attributes: vec![MailboxAttr::NoSelect],
                delimiter: Some('/'),
                mailbox: Mailbox::new(""),
                extended: vec![],
            }));
            return Ok((None, "LIST completed"));
        }
        let boxes = b.mailboxes(account)?;
        let subs = b.subscriptions(account)?;
        let only_subscribed = lsub || selection.contains(&ListSelect::Subscribed);
        let recursive = !lsub && selection.contains(&ListSelect::RecursiveMatch);
        let only_special = selection.contains(&ListSelect::SpecialUse);
        let show_subscribed = only_subscribed && !lsub || returns.contains(&ListReturn::Subscribed);
        let status_items: Option<&Vec<StatusItem>> = returns.iter().find_map(|r| match r {
            ListReturn::Status(items) => Some(items),
            _ => None,
        });
        let full: Vec<String> = patterns.iter().map(|p| format!("{reference}{p}")).collect();
        let matches = |n: &str| full.iter().any(|p| pattern_matches(p, n));
        let mut names: Vec<(String, Option<&StoreMailbox>)> =
            boxes.iter().map(|m| (m.name.clone(), Some(m))).collect();
        if only_subscribed {
            for s in &subs {
                // The subscription, and (for RECURSIVEMATCH and LSUB's `%` rule) each of
                // its parents, which may have no mailbox of their own.
                let mut name = s.as_str();
                loop {
                    if !names.iter().any(|(n, _)| n == name) {
                        names.push((name.to_string(), None));
                    }
                    match name.rsplit_once('/') {
                        Some((parent, _)) if recursive || lsub => name = parent,
                        _ => break,
                    }
                }
            }
        }
        let mut lines = Vec::new();
        for (name, mb) in &names {
            if !matches(name) {
                continue;
            }
            let subscribed = subs.iter().any(|s| s == name);
            // A subscribed descendant that the patterns do not list itself.
            let sub_prefix = format!("{name}/");
            let hidden_child = subs
                .iter()
                .any(|s| s.starts_with(&sub_prefix) && !matches(s));
            // RFC 5258 §3.5 RECURSIVEMATCH: such a mailbox is listed with CHILDINFO
            // ("SUBSCRIBED"), subscribed or not (RFC 5258 §5, example 8).
            let child_info = recursive && hidden_child;
            // RFC 3501 §6.3.9: LSUB with `%` lists an unsubscribed parent of a subscribed
            // mailbox that `%` does not reach, as \Noselect.
            let lsub_parent = lsub && !subscribed && hidden_child;
            if only_subscribed && !subscribed && !child_info && !lsub_parent {
                continue;
            }
            if only_special && mb.is_none_or(|m| m.special_use.is_none()) {
                continue;
            }
            let mut attrs = Vec::new();
            match mb {
                None => attrs.push(MailboxAttr::NonExistent),
                Some(m) => {
                    let prefix = format!("{name}/");
                    attrs.push(if boxes.iter().any(|o| o.name.starts_with(&prefix)) {
                        MailboxAttr::HasChildren
                    } else {
                        MailboxAttr::HasNoChildren
                    });
                    if let Some(su) = m.special_use {
                        attrs.push(special_attr(su));
                    }
                }
            }
            if show_subscribed && subscribed {
                attrs.push(MailboxAttr::Subscribed);
            }
            let data = ListData {
                attributes: attrs,
                delimiter: Some('/'),
                mailbox: Mailbox::new(name.clone()),
                extended: if child_info {
                    vec![ListExtended::ChildInfo(vec!["SUBSCRIBED".into()])]
                } else {
                    vec![]
                },
            };
            // RFC 5819 §3: no STATUS for a mailbox listed only for its children.
            let selected = !only_subscribed || subscribed;
            lines.push((data, *mb, selected, lsub_parent));
        }
        lines.sort_by(|a, b| {
            (!a.0.mailbox.is_inbox(), a.0.mailbox.as_str())
                .cmp(&(!b.0.mailbox.is_inbox(), b.0.mailbox.as_str()))
        });
        for (data, mb, selected, lsub_parent) in lines {
            if lsub {
                // RFC 3501 §7.2.3: LSUB carries no child or special-use information.
                let attributes = if mb.is_none() || lsub_parent {
                    vec![MailboxAttr::NoSelect]
                } else {
                    vec![]
                };
                self.send(Data::Lsub(ListData { attributes, ..data }));
                continue;
            }
            self.send(Data::List(data));
            if let (Some(items), Some(mb), true) = (status_items, mb, selected) {
                self.status_data(b, mb, items)?;
            }
        }
        Ok((
            None,
            if lsub {
                "LSUB completed"
            } else {
                "LIST completed"
            },
        ))
    }

    /// `* STATUS` data (RFC 9051 §6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE,
    /// RFC 7889 APPENDLIMIT).
    pub(super) fn status_data(
        &mut self,
        b: &dyn Backend,
        mb: &StoreMailbox,
        items: &[StatusItem],
    ) -> Result<(), Fail> {
        let mut out = Vec::new();
        let mut deleted = None;
        for &it in items {
            let v = match it {
                StatusItem::Messages => u64::from(mb.exists),
                StatusItem::UidNext => u64::from(mb.uidnext),
                StatusItem::UidValidity => u64::from(mb.uidvalidity),
                StatusItem::Unseen => u64::from(mb.unseen),
                // RFC 3501 §6.3.10: the messages with \Recent: those no session has
                // claimed yet, plus this session's own when the mailbox is selected here.
                StatusItem::Recent => {
                    let mark = b.recent_mark(mb.id);
                    let unclaimed = if mark >= mb.uidnext {
                        0
                    } else {
                        b.messages(mb.id)?
                            .iter()
                            .filter(|(u, _)| *u >= mark)
                            .count() as u64
                    };
                    let own = match &self.state {
                        State::Selected { view, .. } if view.mailbox == mb.id => {
                            u64::from(view.recent())
                        }
                        _ => 0,
                    };
                    unclaimed + own
                }
                StatusItem::Size => mb.size,
                StatusItem::HighestModSeq => mb.highestmodseq,
                StatusItem::AppendLimit => self.cfg.max_message_size,
                StatusItem::Deleted => match deleted {
                    Some(d) => d,
                    None => {
                        let d = b
                            .messages(mb.id)?
                            .iter()
                            .filter(|(_, r)| r.flags & flag::DELETED != 0)
                            .count() as u64;
                        deleted = Some(d);
                        d
                    }
                },
            };
            out.push((it, v));
        }
        self.send(Data::Status {
            mailbox: Mailbox::new(mb.name.clone()),
            items: out,
        });
        Ok(())
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.12, RFC 4315 APPENDUID,
    /// RFC 3502 MULTIAPPEND.
    pub(super) fn append(
        &mut self,
        b: &dyn Backend,
        name: &Mailbox,
        messages: Vec<AppendMessage>,
        now: i64,
    ) -> Done {
        let account = self.account_id()?;
        let Some(mb) = b.mailbox(account, &normalize(name))? else {
            return Err(no(Code::TryCreate, "No such mailbox"));
        };
        // RFC 3502 §6.3.11: every message or none. Sizes are checked before anything is
        // written, and the store appends them all in one transaction.
        let mut list = Vec::with_capacity(messages.len());
        for m in messages {
            if m.data.len() as u64 > self.cfg.max_message_size {
                return Err(no(Code::TooBig, "Message too large"));
            }
            let (flags, keywords) = fetch::bits_of(&m.flags);
            list.push(Appended {
                message: std::sync::Arc::new(NewMessage::new(m.data)),
                flags,
                keywords,
                internal_date: m.date.map(|d| d.unix_timestamp()).unwrap_or(now),
            });
        }
        let out = b.write(Op::Append {
            account,
            mailbox: mb.id,
            messages: list,
        })?;
        let mut uids = Vec::new();
        let mut uidvalidity = mb.uidvalidity;
        if let Output::Delivered(d) = out {
            for (_, v, uid) in d {
                uidvalidity = v;
                uids.push(uid);
            }
        }
        Ok((
            Some(Code::AppendUid {
                uid_validity: uidvalidity,
                uids: SequenceSet::from_sorted(&uids),
            }),
            "APPEND completed",
        ))
    }
}

pub(super) fn normalize(m: &Mailbox) -> String {
    store::normalize_name(m.as_str()).unwrap_or_else(|_| m.as_str().to_string())
}

pub(super) fn parse_special_use(s: &str) -> Option<SpecialUse> {
    let s = s.trim_start_matches('\\');
    Some(match s.to_ascii_lowercase().as_str() {
        "sent" => SpecialUse::Sent,
        "drafts" => SpecialUse::Drafts,
        "trash" => SpecialUse::Trash,
        "junk" => SpecialUse::Junk,
        "archive" => SpecialUse::Archive,
        "all" => SpecialUse::All,
        "flagged" => SpecialUse::Flagged,
        _ => return None,
    })
}

pub(super) fn special_attr(su: SpecialUse) -> MailboxAttr {
    match su {
        SpecialUse::Sent => MailboxAttr::Sent,
        SpecialUse::Drafts => MailboxAttr::Drafts,
        SpecialUse::Trash => MailboxAttr::Trash,
        SpecialUse::Junk => MailboxAttr::Junk,
        SpecialUse::Archive => MailboxAttr::Archive,
        SpecialUse::All => MailboxAttr::All,
        SpecialUse::Flagged => MailboxAttr::Flagged,
    }
}

/// LIST pattern matching (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// separator; INBOX matches case-insensitively.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = if pattern
        .get(..5)
        .is_some_and(|h| h.eq_ignore_ascii_case("INBOX"))
        && (name == "INBOX" || name.starts_with("INBOX/"))
    {
        format!("INBOX{}", pattern.get(5..).unwrap_or(""))
            .chars()
            .collect()
    } else {
        pattern.chars().collect()
    };
    let n: Vec<char> = name.chars().collect();
    // reach[j]: the pattern read so far matches the first j characters of the name.
    let mut reach = vec![false; n.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for pc in p {
        let mut next = vec![false; n.len() + 1];
        let mut open = false;
        for (j, slot) in next.iter_mut().enumerate() {
            let here = reach.get(j).copied().unwrap_or(false);
            let prev = j.checked_sub(1).and_then(|k| n.get(k).copied());
            *slot = match pc {
                '*' => {
                    open |= here;
                    open
                }
                '%' => {
                    // A `%` run cannot cross a separator.
                    if prev == Some('/') {
                        open = false;
                    }
                    open |= here;
                    open
                }
                c => {
                    prev == Some(c)
                        && j.checked_sub(1)
                            .and_then(|k| reach.get(k).copied())
                            .unwrap_or(false)
                }
            };
        }
        reach = next;
    }
    reach.last().copied().unwrap_or(false)
}

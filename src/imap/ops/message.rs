//! Selected-state commands on messages (RFC 9051 §6.4): EXPUNGE / UID EXPUNGE, SEARCH
//! (ESEARCH, SEARCHRES), FETCH (rendered in chunks), STORE (CONDSTORE) and COPY / MOVE
//! (UIDPLUS), plus sequence-set resolution against the session's view.

use std::collections::VecDeque;

use super::super::backend::{Backend, Loaded};
use super::super::command::{
    FetchAttr, FetchModifiers, Flag, Mailbox, SearchKey, SearchReturn, SeqItem, SeqNum,
    SequenceSet, StoreAction,
};
use super::super::response::{Code, Data, ESearchItem, FetchItem, StatusResponse};
use super::super::{fetch, search};
use super::view::flags_with_recent;
use super::{
    CHUNK_BYTES, CHUNK_MESSAGES, Done, Fail, FetchJob, Mode, Session, State, View, no, normalize,
};
use crate::store::records::flag;
use crate::store::{FlagMode, Op, Output};

/// What [`Session::scan`] calls for each match: view index, the view's message, its
/// store row, and its structure (and bytes) when loaded.
pub(super) type Hit<'a> =
    dyn FnMut(usize, &super::Msg, &crate::store::MessageRow, Option<&Loaded>) + 'a;

impl Session {
    pub(super) fn view(&self) -> Result<&View, Fail> {
        match &self.state {
            State::Selected { view, .. } => Ok(view),
            _ => Err(Fail::Bad("no mailbox selected".into())),
        }
    }

    pub(super) fn view_mut(&mut self) -> Result<&mut View, Fail> {
        match &mut self.state {
            State::Selected { view, .. } => Ok(view),
            _ => Err(Fail::Bad("no mailbox selected".into())),
        }
    }

    /// Valid in: Selected. RFC 9051 §6.4.3 (EXPUNGE), RFC 4315 §2.1 (UID EXPUNGE).
    pub(super) fn expunge(&mut self, b: &dyn Backend, set: Option<&SequenceSet>) -> Done {
        let view = self.view()?;
        if view.read_only {
            return Err(no(Code::ReadOnly, "Mailbox is read-only"));
        }
        let uids = match set {
            None => None,
            Some(set) => {
                let idx = resolve(view, set, true)?;
                Some(
                    idx.into_iter()
                        .filter_map(|i| view.msgs.get(i))
                        .filter(|m| m.flags & flag::DELETED != 0)
                        .map(|m| m.uid)
                        .collect::<Vec<_>>(),
                )
            }
        };
        if uids.as_ref().is_some_and(Vec::is_empty) {
            return Ok((None, "EXPUNGE completed"));
        }
        b.write(Op::Expunge {
            mailbox: view.mailbox,
            uids,
        })?;
        Ok((None, "EXPUNGE completed"))
    }

    /// Walks the view and calls `hit(index, message, row, loaded)` for every message
    /// that matches `criteria` (RFC 9051 §6.4.4), for SEARCH, SORT and THREAD. Dates and
    /// sizes come from the store (the view keeps only what changes); flags are the ones
    /// the client was told about. With `parsed`, or when a key looks inside the message,
    /// rows come with their parse-once structure (and bytes only for the latter) in
    /// batches of about a FETCH chunk, one read each: memory is bounded by the batch plus
    /// the largest message, and nothing of a batch is kept but what `hit` takes.
    pub(super) fn scan(
        &self,
        b: &dyn Backend,
        criteria: &[SearchKey],
        now: i64,
        parsed: bool,
        hit: &mut Hit<'_>,
    ) -> Result<(), Fail> {
        let content = search::needs_content(criteria);
        let view = self.view()?;
        let cx = search::Context {
            last_seq: view.msgs.len() as u32,
            last_uid: view.last_uid(),
            saved: &view.saved,
            now,
        };
        let mut test =
            |i: usize, m: &super::Msg, row: &crate::store::MessageRow, l: Option<&Loaded>| {
                let c = search::Candidate {
                    seq: i as u32 + 1,
                    uid: m.uid,
                    flags: m.flags,
                    keywords: &m.keywords,
                    recent: m.recent,
                    internal_date: row.internal_date,
                    size: row.size,
                    modseq: m.modseq,
                    raw: l.and_then(|l| l.raw.as_deref()),
                    parsed: l.and_then(|l| l.parsed.as_ref()),
                };
                if search::matches(criteria, &c, &cx) {
                    hit(i, m, row, l);
                }
            };
        if content || parsed {
            let mut i = 0;
            while let Some(rest) = view.msgs.get(i..).filter(|r| !r.is_empty()) {
                let uids: Vec<u32> = rest.iter().take(CHUNK_MESSAGES).map(|m| m.uid).collect();
                let loaded = b.load(view.mailbox, &uids, true, content, CHUNK_BYTES as u64)?;
                let n = loaded.len().max(1);
                for ((k, m), l) in rest.iter().enumerate().zip(loaded) {
                    if let Some(l) = l {
                        test(i + k, m, &l.row, Some(&l));
                    }
                }
                i += n;
            }
        } else {
            let rows = b.messages(view.mailbox)?;
            for (i, m) in view.msgs.iter().enumerate() {
                if let Some((_, row)) = rows
                    .binary_search_by_key(&m.uid, |(u, _)| *u)
                    .ok()
                    .and_then(|p| rows.get(p))
                {
                    test(i, m, row, None);
                }
            }
        }
        Ok(())
    }

    /// Valid in: Selected. RFC 9051 §6.4.4, RFC 4731 (ESEARCH), RFC 5182 (SAVE),
    /// RFC 7162 §3.1.5 (MODSEQ), RFC 5267 §4.4 (PARTIAL) and §4.3 (UPDATE).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn search(
        &mut self,
        tag: &str,
        b: &dyn Backend,
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
        charset: Option<String>,
        criteria: &[SearchKey],
        now: i64,
    ) -> Done {
        if let Some(cs) = &charset {
            check_charset(cs)?;
        }
        let with_modseq = search::uses_modseq(criteria);
        if with_modseq {
            self.enable_condstore(b)?;
        }
        let mut hits: Vec<(u32, u32, u64)> = Vec::new();
        self.scan(b, criteria, now, false, &mut |i, m, _, _| {
            hits.push((i as u32 + 1, m.uid, m.modseq));
        })?;
        let ids: Vec<u32> = hits.iter().map(|h| if uid { h.1 } else { h.0 }).collect();
        let max_modseq = hits.iter().map(|h| h.2).max();
        // RFC 9051 §6.4.4: an IMAP4rev2 client gets ESEARCH (ALL) for a plain SEARCH.
        let returns = match returns {
            None if self.enabled.rev2 => Some(vec![SearchReturn::All]),
            r => r,
        };
        match returns {
            None => self.send(Data::Search {
                ids,
                modseq: if with_modseq { max_modseq } else { None },
            }),
            Some(ret) => {
                let ret = if ret.is_empty() {
                    vec![SearchReturn::All]
                } else {
                    ret
                };
                if ret.contains(&SearchReturn::Save) {
                    let mut saved: Vec<u32> = hits.iter().map(|h| h.1).collect();
                    saved.sort_unstable();
                    self.view_mut()?.saved = saved;
                }
                let mut items = Vec::new();
                for r in &ret {
                    match r {
                        SearchReturn::Min => {
                            if let Some(&v) = ids.iter().min() {
                                items.push(ESearchItem::Min(v));
                            }
                        }
                        SearchReturn::Max => {
                            if let Some(&v) = ids.iter().max() {
                                items.push(ESearchItem::Max(v));
                            }
                        }
                        SearchReturn::Count => items.push(ESearchItem::Count(ids.len() as u32)),
                        SearchReturn::All => {
                            if !ids.is_empty() {
                                let mut sorted = ids.clone();
                                sorted.sort_unstable();
                                items.push(ESearchItem::All(SequenceSet::from_sorted(&sorted)));
                            }
                        }
                        // RFC 5267 §4.4: positions in the ascending result.
                        SearchReturn::Partial(low, high) => {
                            let (from, to) = super::sort::partial_range(*low, *high, ids.len());
                            let part = ids.get(from..to).unwrap_or_default();
                            items.push(ESearchItem::Partial(
                                *low,
                                *high,
                                (!part.is_empty()).then(|| SequenceSet::from_sorted(part)),
                            ));
                        }
                        SearchReturn::Save | SearchReturn::Update | SearchReturn::Context => {}
                    }
                }
                // RFC 4731 §3.2 (and RFC 7162 §3.1.5): with MIN and/or MAX only, the
                // MODSEQ is that of the message(s) returned (the higher of the two);
                // with ALL or COUNT, the highest of all matches.
                let modseq =
                    if ret.contains(&SearchReturn::All) || ret.contains(&SearchReturn::Count) {
                        max_modseq
                    } else {
                        let id = |h: &(u32, u32, u64)| if uid { h.1 } else { h.0 };
                        let min = hits
                            .iter()
                            .min_by_key(|h| id(h))
                            .filter(|_| ret.contains(&SearchReturn::Min));
                        let max = hits
                            .iter()
                            .max_by_key(|h| id(h))
                            .filter(|_| ret.contains(&SearchReturn::Max));
                        min.into_iter().chain(max).map(|h| h.2).max()
                    };
                if with_modseq && let Some(m) = modseq {
                    items.push(ESearchItem::ModSeq(m));
                }
                // RFC 5182 §2.4: SAVE alone returns no ESEARCH.
                if ret != [SearchReturn::Save] {
                    self.send(Data::ESearch {
                        tag: Some(tag.to_string()),
                        uid,
                        items,
                    });
                }
                // RFC 5267 §4.3: the result stays live.
                if ret.contains(&SearchReturn::Update) {
                    let uids = hits.iter().map(|h| h.1).collect();
                    self.start_context(tag, uid, None, criteria, uids)?;
                }
            }
        }
        Ok((None, "SEARCH completed"))
    }

    /// Valid in: Selected. RFC 9051 §6.4.5, RFC 7162 §3.1.4 (CHANGEDSINCE), §3.2.6
    /// (VANISHED). Starts a [`FetchJob`]; [`Session::fetch_chunk`] renders it.
    pub(super) fn fetch(
        &mut self,
        tag: &str,
        b: &dyn Backend,
        uid: bool,
        set: &SequenceSet,
        mut attrs: Vec<FetchAttr>,
        modifiers: FetchModifiers,
    ) -> Done {
        if modifiers.vanished
            && (!uid || !self.enabled.qresync || modifiers.changed_since.is_none())
        {
            return Err(Fail::Bad(
                "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE".into(),
            ));
        }
        if uid && !attrs.contains(&FetchAttr::Uid) {
            // RFC 9051 §6.4.9: UID FETCH always returns UID.
            attrs.insert(0, FetchAttr::Uid);
        }
        if modifiers.changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.enable_condstore(b)?;
        }
        if modifiers.changed_since.is_some() && !attrs.contains(&FetchAttr::ModSeq) {
            attrs.push(FetchAttr::ModSeq);
        }
        let view = self.view()?;
        let todo: VecDeque<usize> = resolve(view, set, uid)?.into();
        if modifiers.vanished
            && let Some(since) = modifiers.changed_since
        {
            let last = view.last_uid().max(view.uidnext.saturating_sub(1));
            let gone: Vec<u32> = b
                .expunged_since(view.mailbox, since)?
                .into_iter()
                .filter(|u| set.contains(*u, last))
                .collect();
            if !gone.is_empty() {
                self.send(Data::Vanished {
                    earlier: true,
                    uids: SequenceSet::from_sorted(&gone),
                });
            }
        }
        self.mode = Mode::Fetching(Box::new(FetchJob {
            tag: tag.to_string(),
            uid,
            todo,
            attrs,
            changed_since: modifiers.changed_since,
            expunge_issued: false,
            unknown_cte: false,
        }));
        Ok((None, ""))
    }

    pub(super) fn fetch_chunk(&mut self, mut job: FetchJob, b: &dyn Backend) {
        let res = self.fetch_some(&mut job, b);
        if let Err(f) = res {
            self.finish(&job.tag, Err(f));
            return;
        }
        if !job.todo.is_empty() {
            self.mode = Mode::Fetching(Box::new(job));
            return;
        }
        if let Err(e) = self.sync(b, job.uid) {
            tracing::warn!(error = ?e, "imap: sync failed");
        }
        let res = if job.unknown_cte {
            Err(no(
                Code::UnknownCte,
                "Cannot decode a part's transfer encoding",
            ))
        } else if job.expunge_issued {
            Ok((Some(Code::ExpungeIssued), "Some messages were expunged"))
        } else {
            Ok((None, "FETCH completed"))
        };
        self.finish(&job.tag, res);
    }

    /// Renders the next chunk of a FETCH: up to [`CHUNK_MESSAGES`] messages or about
    /// [`CHUNK_BYTES`] of output. Rows, structures and bytes are read in one transaction
    /// per batch; a batch with bytes stops at about the chunk size (or one message), so
    /// memory is bounded by the chunk plus the largest message.
    pub(super) fn fetch_some(&mut self, job: &mut FetchJob, b: &dyn Backend) -> Result<(), Fail> {
        let need_blob = fetch::needs_blob(&job.attrs);
        let need_parsed = fetch::needs_parsed(&job.attrs);
        let sets_seen = fetch::sets_seen(&job.attrs);
        let condstore = self.enabled.condstore;
        let mut count = 0;
        while count < CHUNK_MESSAGES && self.out.len() < CHUNK_BYTES && !job.todo.is_empty() {
            let view = self.view()?;
            let (mailbox, read_only) = (view.mailbox, view.read_only);
            let take = (CHUNK_MESSAGES - count).min(job.todo.len());
            let (idx, uids): (Vec<usize>, Vec<u32>) = job
                .todo
                .iter()
                .take(take)
                // Indices are valid (expunges are withheld during a FETCH); UID 0 never
                // exists and would be reported as expunged.
                .map(|&i| (i, view.msgs.get(i).map_or(0, |m| m.uid)))
                .unzip();
            // With bytes, one read for about what is left of the chunk (at least one
            // message): memory stays bounded by the chunk plus one message.
            let budget = if need_blob {
                CHUNK_BYTES.saturating_sub(self.out.len()) as u64
            } else {
                u64::MAX
            };
            let mut loaded = b.load(mailbox, &uids, need_parsed, need_blob, budget)?;
            let (idx, uids) = (
                idx.get(..loaded.len()).unwrap_or_default().to_vec(),
                uids.get(..loaded.len()).unwrap_or_default().to_vec(),
            );
            job.todo.drain(..idx.len());
            // RFC 9051 §6.4.5: BODY[] (not PEEK) sets \Seen; the FETCH then reports FLAGS.
            let unseen: Vec<u32> = uids
                .iter()
                .zip(&loaded)
                .filter_map(|(u, l)| {
                    l.as_ref()
                        .filter(|l| l.row.flags & flag::SEEN == 0)
                        .map(|_| *u)
                })
                .collect();
            let mut newly_seen = Vec::new();
            let rows = if sets_seen && !read_only && !unseen.is_empty() {
                match b.write(Op::SetFlags {
                    mailbox,
                    uids: unseen,
                    mode: FlagMode::Add,
                    flags: flag::SEEN,
                    keywords: vec![],
                    unchanged_since: None,
                })? {
                    Output::Flags { rows, .. } => rows,
                    _ => Vec::new(),
                }
            } else {
                Vec::new()
            };
            for (u, f, kw, ms) in rows {
                if let Some(l) = uids
                    .iter()
                    .position(|x| *x == u)
                    .and_then(|p| loaded.get_mut(p))
                    .and_then(Option::as_mut)
                {
                    l.row.flags = f;
                    l.row.keywords = kw;
                    l.row.modseq = ms;
                    newly_seen.push(u);
                }
            }
            for ((i, uid), l) in idx.into_iter().zip(uids).zip(loaded) {
                let Some(l) = l else {
                    job.expunge_issued = true;
                    continue;
                };
                if let Some(since) = job.changed_since
                    && l.row.modseq <= since
                {
                    continue;
                }
                let mut attrs = std::borrow::Cow::Borrowed(&job.attrs);
                if newly_seen.contains(&uid) {
                    if !attrs.contains(&FetchAttr::Flags) {
                        attrs.to_mut().push(FetchAttr::Flags);
                    }
                    if condstore && !attrs.contains(&FetchAttr::ModSeq) {
                        attrs.to_mut().push(FetchAttr::ModSeq);
                    }
                }
                let recent = self
                    .view()
                    .ok()
                    .and_then(|v| v.msgs.get(i))
                    .is_some_and(|m| m.recent);
                if attrs.contains(&FetchAttr::Flags) {
                    self.announce_keywords(&l.row.keywords);
                }
                let msg = fetch::Message {
                    uid,
                    row: &l.row,
                    flags: flags_with_recent(l.row.flags, &l.row.keywords, recent),
                    parsed: l.parsed.as_ref(),
                    raw: l.raw.as_deref(),
                };
                match fetch::render(&msg, &attrs) {
                    Ok(items) => self.send(Data::Fetch {
                        seq: i as u32 + 1,
                        items,
                    }),
                    Err(fetch::FetchError::UnknownCte) => job.unknown_cte = true,
                }
                // What the client was told is now what the view knows; flags it was not
                // told about are left for the next sync to report.
                if attrs.contains(&FetchAttr::Flags)
                    && let Ok(view) = self.view_mut()
                    && let Some(vm) = view.msgs.get_mut(i)
                {
                    vm.flags = l.row.flags;
                    vm.keywords = l.row.keywords.into_boxed_slice();
                    vm.modseq = l.row.modseq;
                }
                count += 1;
            }
        }
        Ok(())
    }

    /// Valid in: Selected. RFC 9051 §6.4.6, RFC 7162 §3.1.3 (UNCHANGEDSINCE).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store(
        &mut self,
        b: &dyn Backend,
        uid: bool,
        set: &SequenceSet,
        unchanged_since: Option<u64>,
        action: StoreAction,
        silent: bool,
        flags: &[Flag],
    ) -> Done {
        if unchanged_since.is_some() {
            self.enable_condstore(b)?;
        }
        let condstore = self.enabled.condstore;
        let view = self.view()?;
        if view.read_only {
            return Err(no(Code::ReadOnly, "Mailbox is read-only"));
        }
        let idx = resolve(view, set, uid)?;
        let uids: Vec<u32> = idx
            .iter()
            .filter_map(|&i| view.msgs.get(i))
            .filter(|m| !m.gone)
            .map(|m| m.uid)
            .collect();
        let (bits, keywords) = fetch::bits_of(flags);
        let mode = match action {
            StoreAction::Replace => FlagMode::Replace,
            StoreAction::Add => FlagMode::Add,
            StoreAction::Remove => FlagMode::Remove,
        };
        let out = if uids.is_empty() {
            Output::Flags {
                rows: vec![],
                modified: vec![],
            }
        } else {
            b.write(Op::SetFlags {
                mailbox: view.mailbox,
                uids,
                mode,
                flags: bits,
                keywords: keywords.clone(),
                unchanged_since,
            })?
        };
        let Output::Flags { rows, modified } = out else {
            return Err(Fail::No(
                Some(Code::ServerBug),
                "unexpected store reply".into(),
            ));
        };
        let used: Vec<String> = rows.iter().flat_map(|r| r.2.iter().cloned()).collect();
        self.announce_keywords(&used);
        let view = self.view_mut()?;
        let mut fetches = Vec::new();
        for (u, f, kw, ms) in rows {
            let Some(i) = view.seq_of(u) else { continue };
            let Some(m) = view.msgs.get_mut(i) else {
                continue;
            };
            // RFC 3501 §6.4.6 / RFC 9051 §6.4.6: .SILENT spares the client the flags it
            // set itself, not another session's changes that this write brought along
            // (RFC 7162 §3.2 requires reporting them): when the message's flags are not
            // what the client's own change makes of what it was told, report them.
            let expected = expected_flags(m.flags, &m.keywords, bits, &keywords, mode);
            let others_changed = expected != (f, normalized(&kw));
            m.flags = f;
            m.keywords = kw.clone().into_boxed_slice();
            m.modseq = ms;
            // RFC 7162 §3.1.3: with UNCHANGEDSINCE, .SILENT still reports MODSEQ.
            if !silent || unchanged_since.is_some() || others_changed {
                let silent = silent && !others_changed;
                let mut items = Vec::new();
                if uid {
                    items.push(FetchItem::Uid(u));
                }
                if !silent {
                    items.push(FetchItem::Flags(flags_with_recent(f, &kw, m.recent)));
                }
                if condstore {
                    items.push(FetchItem::ModSeq(ms));
                }
                fetches.push(Data::Fetch {
                    seq: i as u32 + 1,
                    items,
                });
            }
        }
        let modified_ids: Vec<u32> = if uid {
            modified
        } else {
            modified
                .iter()
                .filter_map(|u| view.seq_of(*u).map(|i| i as u32 + 1))
                .collect()
        };
        for f in fetches {
            self.send(f);
        }
        if !modified_ids.is_empty() {
            let mut m = modified_ids;
            m.sort_unstable();
            return Ok((
                Some(Code::Modified(SequenceSet::from_sorted(&m))),
                "Conditional STORE failed for some messages",
            ));
        }
        Ok((None, "STORE completed"))
    }

    /// Valid in: Selected. RFC 9051 §6.4.7 (COPY), RFC 6851 (MOVE), RFC 4315 COPYUID.
    pub(super) fn copy(
        &mut self,
        b: &dyn Backend,
        uid: bool,
        set: &SequenceSet,
        dest: &Mailbox,
        remove: bool,
    ) -> Done {
        let account = self.account_id()?;
        let view = self.view()?;
        if remove && view.read_only {
            return Err(no(Code::ReadOnly, "Mailbox is read-only"));
        }
        let idx = resolve(view, set, uid)?;
        let uids: Vec<u32> = idx
            .iter()
            .filter_map(|&i| view.msgs.get(i))
            .filter(|m| !m.gone)
            .map(|m| m.uid)
            .collect();
        let from = view.mailbox;
        let Some(to) = b.mailbox(account, &normalize(dest))? else {
            return Err(no(Code::TryCreate, "No such mailbox"));
        };
        if uids.is_empty() {
            return Ok((
                None,
                if remove {
                    "MOVE completed"
                } else {
                    "COPY completed"
                },
            ));
        }
        let out = b.write(Op::Copy {
            from,
            uids,
            to: to.id,
            remove,
        })?;
        let code = match out {
            Output::Copied { uidvalidity, pairs } if !pairs.is_empty() => {
                let (src, dst): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
                Some(Code::CopyUid {
                    uid_validity: uidvalidity,
                    source: compress(&src),
                    dest: compress(&dst),
                })
            }
            _ => None,
        };
        if remove {
            // RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
            if let Some(code) = code {
                self.status(StatusResponse::ok(None, Some(code), "Moved"));
            }
            Ok((None, "MOVE completed"))
        } else {
            Ok((code, "COPY completed"))
        }
    }
}

/// Keywords compared without case and order.
fn normalized(kw: &[String]) -> Vec<String> {
    let mut v: Vec<String> = kw.iter().map(|k| k.to_ascii_lowercase()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The flags a STORE of `bits`/`keywords` with `mode` makes of `flags`/`old` (keywords
/// normalised with [`normalized`]).
fn expected_flags(
    flags: u8,
    old: &[String],
    bits: u8,
    keywords: &[String],
    mode: FlagMode,
) -> (u8, Vec<String>) {
    match mode {
        FlagMode::Replace => (bits, normalized(keywords)),
        FlagMode::Add => {
            let mut kw = old.to_vec();
            kw.extend(keywords.iter().cloned());
            (flags | bits, normalized(&kw))
        }
        FlagMode::Remove => {
            let kw: Vec<String> = old
                .iter()
                .filter(|k| !keywords.iter().any(|r| r.eq_ignore_ascii_case(k)))
                .cloned()
                .collect();
            (flags & !bits, normalized(&kw))
        }
    }
}

/// The search charsets we take (RFC 9051 §6.4.4, RFC 5256 §3: US-ASCII and UTF-8 MUST
/// be implemented); others get `NO [BADCHARSET (UTF-8 US-ASCII)]`.
pub(super) fn check_charset(cs: &str) -> Result<(), Fail> {
    if cs.eq_ignore_ascii_case("UTF-8") || cs.eq_ignore_ascii_case("US-ASCII") {
        return Ok(());
    }
    Err(no(
        Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()]),
        "Unsupported charset",
    ))
}

/// Compresses UIDs in their given order into a set (COPYUID keeps source and
/// destination in matching order, so runs are only merged when ascending by one).
pub(super) fn compress(uids: &[u32]) -> SequenceSet {
    let mut items = Vec::new();
    let mut it = uids.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&end.wrapping_add(1)) {
            end += 1;
            it.next();
        }
        items.push(if start == end {
            SeqItem::One(SeqNum::Value(start))
        } else {
            SeqItem::Range(SeqNum::Value(start), SeqNum::Value(end))
        });
    }
    if items.is_empty() {
        items.push(SeqItem::One(SeqNum::Value(0)));
    }
    SequenceSet(items)
}

/// The view indices a set names (RFC 9051 §9 sequence-set; `$` RFC 5182). A sequence
/// number past the end is a client error (BAD, RFC 9051 §6.4.8); UIDs that do not
/// exist are simply not matched.
pub(super) fn resolve(view: &View, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Fail> {
    let n = view.msgs.len() as u32;
    if !uid {
        for item in &set.0 {
            let bad = |s: &SeqNum| matches!(s, SeqNum::Value(v) if *v > n);
            let out_of_range = match item {
                SeqItem::One(s) => bad(s) || (n == 0 && *s == SeqNum::Last),
                SeqItem::Range(a, c) => bad(a) || bad(c) || n == 0,
                SeqItem::Saved => false,
            };
            if out_of_range {
                return Err(Fail::Bad("Invalid message sequence number".into()));
            }
        }
    }
    let last_uid = view.last_uid();
    let saved = set.uses_saved();
    Ok(view
        .msgs
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            let key = if uid { m.uid } else { *i as u32 + 1 };
            let last = if uid { last_uid } else { n };
            set.contains(key, last) || (saved && view.saved.binary_search(&m.uid).is_ok())
        })
        .map(|(i, _)| i)
        .collect())
}

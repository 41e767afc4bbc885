//! Selected-state SORT and THREAD (RFC 5256), with SORT=DISPLAY (RFC 5957) and ESORT
//! (RFC 5267 §3). Both search like SEARCH (the same keys, [`Session::scan`]), take
//! their keys from the parse-once structure of each match (never the message bytes,
//! unless a search key itself needs them) and keep only small per-message keys:
//! sorting 100,000 messages holds 100,000 short rows, not their bodies or structures.
//! SORT keeps each body's keys in the daemon's [`sort::KeyCache`], so a mailbox's
//! structures are decoded by its first SORT only.

use std::sync::Arc;

use super::super::backend::Backend;
use super::super::command::{SearchKey, SearchReturn, SortCriterion, ThreadAlgorithm};
use super::super::response::{Data, ESearchItem};
use super::super::{search, sort, thread};
use super::message::{check_charset, compress};
use super::{CHUNK_MESSAGES, Done, Session};

impl Session {
    /// Valid in: Selected. RFC 5256 §3 (SORT), RFC 5957 (DISPLAYFROM, DISPLAYTO),
    /// RFC 5267 §3.1 (ESORT: `RETURN (MIN MAX ALL COUNT)`, §4.4 PARTIAL, §4.3 UPDATE),
    /// RFC 5182 (SAVE), RFC 7162 §3.1.5 (MODSEQ).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sort(
        &mut self,
        tag: &str,
        b: &dyn Backend,
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
        criteria: &[SortCriterion],
        charset: &str,
        keys: &[SearchKey],
        now: i64,
    ) -> Done {
        check_charset(charset)?;
        let with_modseq = search::uses_modseq(keys);
        if with_modseq {
            self.enable_condstore(b)?;
        }
        let rows = self.sorted_rows(b, criteria, keys, now)?;
        let id = |r: &sort::SortRow| if uid { r.uid } else { r.seq };
        let ids: Vec<u32> = rows.iter().map(id).collect();
        let Some(ret) = returns else {
            let modseq = rows.iter().map(|r| r.modseq).max();
            self.send(Data::Sort {
                ids,
                modseq: if with_modseq { modseq } else { None },
            });
            return Ok((None, "SORT completed"));
        };
        // RFC 4731 §3.1, which ESORT follows: RETURN () is RETURN (ALL).
        let ret = if ret.is_empty() {
            vec![SearchReturn::All]
        } else {
            ret
        };
        if ret.contains(&SearchReturn::Save) {
            let mut saved: Vec<u32> = rows.iter().map(|r| r.uid).collect();
            saved.sort_unstable();
            self.view_mut()?.saved = saved;
        }
        let mut items = Vec::new();
        // The rows whose numbers are returned: their highest MODSEQ is reported
        // (RFC 7162 §3.1.5, as for ESEARCH MIN/MAX; all of them for ALL and COUNT).
        let mut reported: Vec<&sort::SortRow> = Vec::new();
        for r in &ret {
            match r {
                // RFC 5267 §3.1: MIN and MAX are the first and last in sort order.
                SearchReturn::Min => {
                    if let Some(first) = rows.first() {
                        items.push(ESearchItem::Min(id(first)));
                        reported.push(first);
                    }
                }
                SearchReturn::Max => {
                    if let Some(last) = rows.last() {
                        items.push(ESearchItem::Max(id(last)));
                        reported.push(last);
                    }
                }
                SearchReturn::Count => {
                    items.push(ESearchItem::Count(ids.len() as u32));
                    reported.extend(rows.iter());
                }
                // RFC 5267 §3.1: ALL in sort order (a range only where numbers ascend
                // by one).
                SearchReturn::All => {
                    if !ids.is_empty() {
                        items.push(ESearchItem::All(compress(&ids)));
                    }
                    reported.extend(rows.iter());
                }
                // RFC 5267 §4.4: the 1-based positions low..=high of the sorted result.
                SearchReturn::Partial(low, high) => {
                    let (from, to) = partial_range(*low, *high, ids.len());
                    let part = ids.get(from..to).unwrap_or_default();
                    items.push(ESearchItem::Partial(
                        *low,
                        *high,
                        (!part.is_empty()).then(|| compress(part)),
                    ));
                    reported.extend(rows.get(from..to).unwrap_or_default());
                }
                SearchReturn::Save | SearchReturn::Update | SearchReturn::Context => {}
            }
        }
        if with_modseq && let Some(m) = reported.iter().map(|r| r.modseq).max() {
            items.push(ESearchItem::ModSeq(m));
        }
        // RFC 5182 §2.4: SAVE alone returns no ESEARCH.
        if !(ret.len() == 1 && ret[0] == SearchReturn::Save) {
            self.send(Data::ESearch {
                tag: Some(tag.to_string()),
                uid,
                items,
            });
        }
        // RFC 5267 §4.3: the result stays live.
        if ret.contains(&SearchReturn::Update) {
            let uids = rows.iter().map(|r| r.uid).collect();
            self.start_context(tag, uid, Some(criteria.to_vec()), keys, uids)?;
        }
        Ok((None, "SORT completed"))
    }

    /// The messages matching `keys`, in the order of `criteria` (RFC 5256 §3): SORT's
    /// result, and a live SORT's each time it is re-evaluated.
    pub(super) fn sorted_rows(
        &self,
        b: &dyn Backend,
        criteria: &[SortCriterion],
        keys: &[SearchKey],
        now: i64,
    ) -> Result<Vec<sort::SortRow>, super::Fail> {
        let mut rows: Vec<sort::SortRow> = Vec::new();
        match self.cfg.sort_cache.clone() {
            Some(cache) if sort::needs_parsed(criteria) && !search::needs_content(keys) => {
                self.sort_rows_cached(b, &cache, criteria, keys, now, &mut rows)?
            }
            _ => self.scan(
                b,
                keys,
                now,
                sort::needs_parsed(criteria),
                &mut |i, m, row, l| {
                    let parsed = l.and_then(|l| l.parsed.as_ref());
                    rows.push(sort::SortRow {
                        seq: i as u32 + 1,
                        uid: m.uid,
                        modseq: m.modseq,
                        values: criteria
                            .iter()
                            .map(|c| sort::value(c.key, parsed, row.internal_date, row.size))
                            .collect(),
                    });
                },
            )?,
        }
        sort::sort(criteria, &mut rows);
        Ok(rows)
    }

    /// The rows of a SORT through the key cache: the matches from the mailbox's rows
    /// (one range scan, no structure), then the structures of the bodies the cache does
    /// not know yet, read in batches.
    fn sort_rows_cached(
        &self,
        b: &dyn Backend,
        cache: &sort::KeyCache,
        criteria: &[SortCriterion],
        keys: &[SearchKey],
        now: i64,
        rows: &mut Vec<sort::SortRow>,
    ) -> Result<(), super::Fail> {
        struct Hit {
            seq: u32,
            uid: u32,
            modseq: u64,
            blob: [u8; 32],
            internal_date: i64,
            size: u64,
        }
        let mut hits = Vec::new();
        self.scan(b, keys, now, false, &mut |i, m, row, _| {
            hits.push(Hit {
                seq: i as u32 + 1,
                uid: m.uid,
                modseq: m.modseq,
                blob: row.blob,
                internal_date: row.internal_date,
                size: row.size,
            });
        })?;
        let want: Vec<(u32, [u8; 32])> = hits.iter().map(|h| (h.uid, h.blob)).collect();
        let known = self.body_keys(b, cache, &want)?;
        rows.extend(hits.iter().zip(known).map(|(h, k)| {
            sort::SortRow {
                seq: h.seq,
                uid: h.uid,
                modseq: h.modseq,
                values: criteria
                    .iter()
                    .map(|c| match &k {
                        Some(k) => k.value(c.key, h.internal_date, h.size),
                        None => sort::value(c.key, None, h.internal_date, h.size),
                    })
                    .collect(),
            }
        }));
        Ok(())
    }

    /// The cached keys of these messages (UID, body): the cache's, and for the bodies it
    /// does not know, computed from their structures read in batches and remembered.
    fn body_keys(
        &self,
        b: &dyn Backend,
        cache: &sort::KeyCache,
        msgs: &[(u32, [u8; 32])],
    ) -> Result<Vec<Option<Arc<sort::BodyKeys>>>, super::Fail> {
        let blobs: Vec<[u8; 32]> = msgs.iter().map(|m| m.1).collect();
        let mut known = cache.get_many(&blobs);
        let missing: Vec<usize> = (0..known.len()).filter(|&i| known[i].is_none()).collect();
        let mailbox = self.view()?.mailbox;
        for batch in missing.chunks(CHUNK_MESSAGES) {
            let uids: Vec<u32> = batch.iter().map(|&i| msgs[i].0).collect();
            let mut done = 0;
            while done < uids.len() {
                let loaded = b.load(mailbox, &uids[done..], true, false, u64::MAX)?;
                let n = loaded.len().max(1);
                for (k, l) in loaded.into_iter().enumerate() {
                    let Some(p) = l.as_ref().and_then(|l| l.parsed.as_ref()) else {
                        continue;
                    };
                    if let Some(&i) = batch.get(done + k) {
                        known[i] = Some(cache.insert(msgs[i].1, sort::BodyKeys::of(p)));
                    }
                }
                done += n;
            }
        }
        Ok(known)
    }

    /// Valid in: Selected. RFC 5256 §3 (THREAD: ORDEREDSUBJECT, REFERENCES),
    /// draft-ietf-morg-inthread-01 §3 (REFS).
    pub(super) fn thread(
        &mut self,
        b: &dyn Backend,
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: &str,
        keys: &[SearchKey],
        now: i64,
    ) -> Done {
        check_charset(charset)?;
        if search::uses_modseq(keys) {
            self.enable_condstore(b)?;
        }
        let subjects = algorithm != ThreadAlgorithm::Refs;
        let mut builder = thread::Builder::new();
        if let Some(cache) = self.cfg.sort_cache.clone()
            && !search::needs_content(keys)
        {
            let mut hits: Vec<(u32, u32, [u8; 32], i64)> = Vec::new();
            self.scan(b, keys, now, false, &mut |i, m, row, _| {
                let id = if uid { m.uid } else { i as u32 + 1 };
                hits.push((id, m.uid, row.blob, row.internal_date));
            })?;
            let want: Vec<(u32, [u8; 32])> = hits.iter().map(|h| (h.1, h.2)).collect();
            let known = self.body_keys(b, &cache, &want)?;
            let none = thread::ThreadKeys::default();
            for (h, k) in hits.iter().zip(known) {
                match k {
                    Some(k) => builder.add_keys(
                        h.0,
                        k.sent(h.3),
                        &k.thread,
                        if subjects {
                            k.subject().to_string()
                        } else {
                            String::new()
                        },
                        subjects && k.reply,
                    ),
                    None => builder.add_keys(h.0, h.3, &none, String::new(), false),
                }
            }
            self.send(Data::Thread(builder.build(algorithm)));
            return Ok((None, "THREAD completed"));
        }
        self.scan(b, keys, now, true, &mut |i, m, row, l| {
            let parsed = l.and_then(|l| l.parsed.as_ref());
            let env = parsed.map(|p| &p.envelope);
            let (subject, reply) = match env.and_then(|e| e.subject.as_deref()) {
                Some(s) if subjects => {
                    let (base, reply) = sort::base_subject(s);
                    (sort::casemap(&base), reply)
                }
                _ => (String::new(), false),
            };
            builder.add(
                if uid { m.uid } else { i as u32 + 1 },
                sort::sent_or_internal(parsed, row.internal_date),
                env.and_then(|e| e.message_id.as_deref()),
                parsed.and_then(|p| p.references.as_deref()),
                env.and_then(|e| e.in_reply_to.as_deref()),
                subject,
                reply,
            );
        })?;
        self.send(Data::Thread(builder.build(algorithm)));
        Ok((None, "THREAD completed"))
    }
}

/// The 0-based index range `from..to` of the 1-based positions `low..=high` (RFC 5267
/// §4.4) in a result of `len` messages; empty when the range lies beyond the result.
pub(super) fn partial_range(low: u32, high: u32, len: usize) -> (usize, usize) {
    let from = (low as usize).saturating_sub(1).min(len);
    let to = (high as usize).min(len).max(from);
    (from, to)
}

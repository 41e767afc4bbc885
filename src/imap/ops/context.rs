//! Live SEARCH and SORT results (RFC 5267 §4.3, CONTEXT=SEARCH and CONTEXT=SORT).
//!
//! A `SEARCH RETURN (UPDATE ..)` or `SORT RETURN (UPDATE ..)` leaves a [`Context`] in the
//! selected mailbox's view: the command's criteria and its result as UIDs in result
//! order. Whenever the view is synced with store changes (at the end of a command, or
//! during IDLE) and EXPUNGE may be sent, every context is evaluated again over the view
//! and the difference goes to the client as `* ESEARCH (TAG "t") [UID] REMOVEFROM (..)`
//! (before the EXPUNGE responses, so message numbers are the ones the client still
//! holds) and `* ESEARCH (TAG "t") [UID] ADDTO (..)` (after EXISTS). `CANCELUPDATE`
//! ends a context; leaving the Selected state ends them all.
//!
//! Positions: a SEARCH result is in ascending order, so its updates carry position 0
//! and the whole set (the RFC 5267 §4.3 example, as Dovecot does). A SORT result's
//! updates carry one `position number` pair per message (§4.3, §4.4): removals first,
//! highest position first, each position counted in the list as it is when that
//! removal is applied; then additions in ascending position, each the message's
//! position in the new result. Applied in order they turn the old list into the new.
//!
//! Memory: a session holds at most [`super::MAX_CONTEXTS`] contexts and each holds 4
//! bytes per message of its result (100,000 messages: 400 KB); re-evaluating one costs
//! what the SEARCH or SORT itself costs (the SORT key cache keeps that to the rows).

use std::collections::HashSet;

use super::super::backend::Backend;
use super::super::command::{SearchKey, SequenceSet, SortCriterion};
use super::super::response::{Code, Data, ESearchItem, Response, StatusResponse};
use super::super::search;
use super::{Done, Fail, MAX_CONTEXTS, Session, State, View};

/// `position number` pairs per ESEARCH line in SORT updates (a line stays short even
/// when thousands of messages arrive at once).
const PAIRS_PER_LINE: usize = 1000;

/// One live result (RFC 5267 §4.3).
#[derive(Debug, Clone)]
pub(super) struct Context {
    /// The tag of the command that made it.
    tag: String,
    /// Updates name UIDs (`UID SEARCH` / `UID SORT`), else message numbers.
    uid: bool,
    /// SORT's criteria; `None` for SEARCH.
    sort: Option<Vec<SortCriterion>>,
    /// The search keys.
    keys: Vec<SearchKey>,
    /// The result as last reported: UIDs in result order.
    uids: Vec<u32>,
}

/// What [`diff`] finds: `(position, uid)` removals and additions (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Highest position first; each position as the list is when it is applied.
    pub removed: Vec<(u32, u32)>,
    /// Ascending positions in the new list.
    pub added: Vec<(u32, u32)>,
}

/// The changes from `old` to `new` (UIDs in result order). The messages in both keep
/// their relative order (SORT keys of a message never change, ties go by arrival), so
/// removals and additions alone turn `old` into `new`; if they somehow did not, the
/// whole old list is removed and the whole new one added, which is still correct.
pub fn diff(old: &[u32], new: &[u32]) -> Diff {
    let in_new: HashSet<u32> = new.iter().copied().collect();
    let in_old: HashSet<u32> = old.iter().copied().collect();
    let kept_old = old.iter().filter(|u| in_new.contains(u));
    let kept_new = new.iter().filter(|u| in_old.contains(u));
    let (in_new, in_old) = if kept_old.eq(kept_new) {
        (in_new, in_old)
    } else {
        (HashSet::new(), HashSet::new())
    };
    let mut removed: Vec<(u32, u32)> = old
        .iter()
        .enumerate()
        .filter(|(_, u)| !in_new.contains(u))
        .map(|(i, &u)| (i as u32 + 1, u))
        .collect();
    removed.reverse();
    let added = new
        .iter()
        .enumerate()
        .filter(|(_, u)| !in_old.contains(u))
        .map(|(i, &u)| (i as u32 + 1, u))
        .collect();
    Diff { removed, added }
}

impl Session {
    /// Keeps the result of the command tagged `tag` live (RFC 5267 §4.3). Refused with
    /// an untagged `NO [NOUPDATE "tag"]` (the command itself still succeeds, as in
    /// Dovecot) when the session holds [`MAX_CONTEXTS`] already, when a live result has
    /// this tag, or when the keys use `$` (RFC 5182: `$` changes with every SAVE, so
    /// the result would change meaning under the client).
    pub(super) fn start_context(
        &mut self,
        tag: &str,
        uid: bool,
        sort: Option<Vec<SortCriterion>>,
        keys: &[SearchKey],
        uids: Vec<u32>,
    ) -> Result<(), Fail> {
        let view = self.view_mut()?;
        let refusal = if search::uses_saved(keys) {
            Some("UPDATE is not kept for a search that uses $".to_string())
        } else if view.contexts.iter().any(|c| c.tag == tag) {
            Some("A live result already has this tag".to_string())
        } else if view.contexts.len() >= MAX_CONTEXTS {
            Some(format!("Too many live results ({MAX_CONTEXTS} at most)"))
        } else {
            view.contexts.push(Context {
                tag: tag.to_string(),
                uid,
                sort,
                keys: keys.to_vec(),
                uids,
            });
            None
        };
        if let Some(text) = refusal {
            self.status(StatusResponse::no(
                None,
                Some(Code::NoUpdate(tag.to_string())),
                &text,
            ));
        }
        Ok(())
    }

    /// Valid in: Selected. RFC 5267 §4.3 `CANCELUPDATE`: ends the live results of these
    /// tags; a tag with none is a client error (BAD, as Dovecot) and cancels nothing.
    pub(super) fn cancel_update(&mut self, tags: &[String]) -> Done {
        let view = self.view_mut()?;
        if let Some(t) = tags
            .iter()
            .find(|t| !view.contexts.iter().any(|c| c.tag == **t))
        {
            return Err(Fail::Bad(format!("No live result has the tag {t:?}")));
        }
        view.contexts.retain(|c| !tags.contains(&c.tag));
        Ok((None, "CANCELUPDATE completed"))
    }

    /// Evaluates every live result again over the synced view and returns the updates:
    /// REMOVEFROM responses (to go before this sync's EXPUNGEs; `before` is the view's
    /// UIDs before they were removed, for message numbers) and ADDTO responses (to go
    /// after EXISTS). A context that cannot be evaluated (a store error) keeps its old
    /// result and is tried again at the next change.
    pub(super) fn context_updates(
        &mut self,
        b: &dyn Backend,
        before: Option<&[u32]>,
    ) -> (Vec<Response>, Vec<Response>) {
        let mut fresh: Vec<Option<Vec<u32>>> = Vec::new();
        if let State::Selected { view, .. } = &self.state {
            for c in &view.contexts {
                let result = match &c.sort {
                    Some(criteria) => self
                        .sorted_rows(b, criteria, &c.keys, self.now)
                        .map(|rows| rows.iter().map(|r| r.uid).collect()),
                    None => {
                        let mut uids = Vec::new();
                        self.scan(b, &c.keys, self.now, false, &mut |_, m, _, _| {
                            uids.push(m.uid)
                        })
                        .map(|()| uids)
                    }
                };
                if let Err(e) = &result {
                    tracing::warn!(error = ?e, tag = %c.tag, "imap: live result not updated");
                }
                fresh.push(result.ok());
            }
        }
        let State::Selected { view, .. } = &mut self.state else {
            return Default::default();
        };
        let View { contexts, msgs, .. } = &mut **view;
        let seq_now = |u: u32| {
            msgs.binary_search_by_key(&u, |m| m.uid)
                .map_or(0, |i| i as u32 + 1)
        };
        let seq_before = |u: u32| match before {
            Some(list) => list.binary_search(&u).map_or(0, |i| i as u32 + 1),
            None => seq_now(u),
        };
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        for (c, new) in contexts.iter_mut().zip(fresh) {
            let Some(new) = new else { continue };
            let d = diff(&c.uids, &new);
            c.uids = new;
            let id_before = |u: u32| if c.uid { u } else { seq_before(u) };
            let id_now = |u: u32| if c.uid { u } else { seq_now(u) };
            let update = |item: ESearchItem| -> Response {
                Data::ESearch {
                    tag: Some(c.tag.clone()),
                    uid: c.uid,
                    items: vec![item],
                }
                .into()
            };
            if c.sort.is_none() {
                // Ascending result: position 0 and one set.
                let mut gone: Vec<u32> = d.removed.iter().map(|&(_, u)| id_before(u)).collect();
                gone.sort_unstable();
                if !gone.is_empty() {
                    pre.push(update(ESearchItem::RemoveFrom(vec![(
                        0,
                        SequenceSet::from_sorted(&gone),
                    )])));
                }
                let mut came: Vec<u32> = d.added.iter().map(|&(_, u)| id_now(u)).collect();
                came.sort_unstable();
                if !came.is_empty() {
                    post.push(update(ESearchItem::AddTo(vec![(
                        0,
                        SequenceSet::from_sorted(&came),
                    )])));
                }
                continue;
            }
            for chunk in d.removed.chunks(PAIRS_PER_LINE) {
                let pairs = chunk
                    .iter()
                    .map(|&(p, u)| (p, SequenceSet::single(id_before(u))))
                    .collect();
                pre.push(update(ESearchItem::RemoveFrom(pairs)));
            }
            for chunk in d.added.chunks(PAIRS_PER_LINE) {
                let pairs = chunk
                    .iter()
                    .map(|&(p, u)| (p, SequenceSet::single(id_now(u))))
                    .collect();
                post.push(update(ESearchItem::AddTo(pairs)));
            }
        }
        (pre, post)
    }

    /// True when live results exist (the sync keeps the UIDs before its expunges).
    pub(super) fn has_contexts(&self) -> bool {
        matches!(&self.state, State::Selected { view, .. } if !view.contexts.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a diff the way a client does (RFC 5267 §4.3): each removal at its
    /// position, then each addition at its position.
    fn apply(old: &[u32], d: &Diff) -> Vec<u32> {
        let mut list = old.to_vec();
        for &(p, u) in &d.removed {
            assert_eq!(list.remove(p as usize - 1), u, "removal at {p}");
        }
        for &(p, u) in &d.added {
            list.insert(p as usize - 1, u);
        }
        list
    }

    #[test]
    fn diff_positions_replay_to_the_new_result() {
        let cases: &[(&[u32], &[u32])] = &[
            (&[], &[]),
            (&[], &[5, 1, 3]),
            (&[5, 1, 3], &[]),
            (&[5, 1, 3], &[5, 1, 3]),
            // Sorted results (not ascending): additions in the middle and at the ends.
            (&[7, 2, 9], &[4, 7, 2, 8, 9, 1]),
            // Removals at the ends and in the middle, with additions between.
            (&[7, 2, 9, 4, 11], &[2, 12, 4]),
            (&[1, 2, 3, 4, 5, 6], &[2, 4, 6, 7]),
        ];
        for (old, new) in cases {
            let d = diff(old, new);
            assert_eq!(apply(old, &d), *new, "{old:?} -> {new:?}");
            let positions: Vec<u32> = d.removed.iter().map(|p| p.0).collect();
            assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
            let positions: Vec<u32> = d.added.iter().map(|p| p.0).collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        }
    }

    #[test]
    fn diff_of_a_reordered_list_replaces_it_whole() {
        let d = diff(&[1, 2, 3], &[3, 2, 1]);
        assert_eq!(apply(&[1, 2, 3], &d), vec![3, 2, 1]);
        assert_eq!(d.removed.len(), 3);
        assert_eq!(d.added.len(), 3);
    }

    #[test]
    fn diff_reports_exact_positions() {
        // Old sorted list 10 20 30 40; 20 expunged, 25 arrives between 10 and 30.
        let d = diff(&[10, 20, 30, 40], &[10, 25, 30, 40]);
        assert_eq!(d.removed, vec![(2, 20)]);
        assert_eq!(d.added, vec![(2, 25)]);
    }
}

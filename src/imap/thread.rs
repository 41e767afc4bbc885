//! THREAD (RFC 5256 §3 BASE.6.4.THREAD) as pure functions: ORDEREDSUBJECT,
//! REFERENCES, and REFS (draft-ietf-morg-inthread-01 §3, as Dovecot offers it:
//! REFERENCES without the subject merging of step 5, threads ordered by their newest
//! message).
//!
//! The session feeds one [`ThreadMsg`] per matching message, in sequence order, through
//! a [`Builder`] that interns Message-IDs (memory grows with the distinct IDs, not with
//! the length of every References line). Trees are arenas walked without recursion, so
//! a hostile mailbox (100,000 messages nested one under the other) cannot overflow a
//! thread's stack.

use std::collections::HashMap;

use super::command::ThreadAlgorithm;

/// A thread tree: nodes in an arena, `roots` in order. A node with no id is a dummy
/// (a message that is not in the result but holds siblings together, RFC 5256 §4
/// `((3)(5))`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Threads {
    /// Every node.
    pub nodes: Vec<Node>,
    /// The top level, in order.
    pub roots: Vec<usize>,
}

/// One node of [`Threads`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The message number or UID to send; `None` for a dummy.
    pub id: Option<u32>,
    /// Children, in order.
    pub children: Vec<usize>,
}

impl Threads {
    /// Appends the threads as RFC 5256 §5 `1*thread-list` (`(2)(3 6 (4 23)(44 7 96))`),
    /// without recursion: a run of only children is written as successive numbers, a
    /// split as nested lists, a dummy as a list of its children's lists.
    pub fn encode(&self, out: &mut Vec<u8>) {
        enum Act {
            Open(usize),
            Close,
        }
        let mut stack: Vec<Act> = self.roots.iter().rev().map(|&r| Act::Open(r)).collect();
        while let Some(act) = stack.pop() {
            let Act::Open(n) = act else {
                out.push(b')');
                continue;
            };
            out.push(b'(');
            let mut cur = n;
            let mut first = true;
            loop {
                let Some(node) = self.nodes.get(cur) else {
                    stack.push(Act::Close);
                    break;
                };
                if let Some(id) = node.id {
                    if !first {
                        out.push(b' ');
                    }
                    out.extend_from_slice(id.to_string().as_bytes());
                    first = false;
                }
                match node.children.as_slice() {
                    [only] => cur = *only,
                    kids => {
                        stack.push(Act::Close);
                        if !kids.is_empty() && !first {
                            out.push(b' ');
                        }
                        stack.extend(kids.iter().rev().map(|&k| Act::Open(k)));
                        break;
                    }
                }
            }
        }
    }
}

/// One message to thread.
#[derive(Debug, Clone)]
pub struct ThreadMsg {
    /// What the reply names it by (sequence number or UID).
    pub id: u32,
    /// Sent date (RFC 5256 §2.2), unix seconds.
    pub sent: i64,
    /// Interned Message-ID, if it has a valid one.
    pub message_id: Option<u32>,
    /// Interned references, oldest first (References, else the first In-Reply-To ID).
    pub references: Vec<u32>,
    /// Base subject, casemapped (empty for REFS, which does not use it).
    pub subject: String,
    /// The subject shows a reply or forward (RFC 5256 §3).
    pub reply: bool,
}

/// The msg-ids of a header value, normalised (RFC 5256 §3: quoting removed, so
/// `<"a"@b>` and `<a@b>` are the same ID; compared case-sensitively).
pub fn message_ids(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split('<').skip(1).filter_map(|chunk| {
        let (inner, _) = chunk.split_once('>')?;
        let mut id = String::with_capacity(inner.len());
        let mut escaped = false;
        for c in inner.chars() {
            match c {
                _ if escaped => {
                    id.push(c);
                    escaped = false;
                }
                '\\' => escaped = true,
                '"' => {}
                c if c.is_whitespace() => {}
                c => id.push(c),
            }
        }
        (!id.is_empty()).then_some(id)
    })
}

/// What REFERENCES needs of a message's headers: its Message-ID and its references
/// (the References IDs, or when it has none the first In-Reply-To ID, RFC 5256 §3),
/// normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadKeys {
    /// The Message-ID, if valid.
    pub message_id: Option<Box<str>>,
    /// The references, oldest first.
    pub references: Box<[Box<str>]>,
}

impl ThreadKeys {
    /// The keys from the raw header values.
    pub fn of(
        message_id: Option<&str>,
        references: Option<&str>,
        in_reply_to: Option<&str>,
    ) -> ThreadKeys {
        let mut refs: Vec<Box<str>> = references
            .into_iter()
            .flat_map(message_ids)
            .map(String::into_boxed_str)
            .collect();
        if refs.is_empty()
            && let Some(r) = in_reply_to.and_then(|v| message_ids(v).next())
        {
            refs.push(r.into_boxed_str());
        }
        ThreadKeys {
            message_id: message_id
                .and_then(|m| message_ids(m).next())
                .map(String::into_boxed_str),
            references: refs.into_boxed_slice(),
        }
    }

    /// Bytes held, roughly.
    pub fn weight(&self) -> usize {
        self.message_id.as_deref().map_or(0, str::len)
            + self.references.iter().map(|r| r.len() + 16).sum::<usize>()
    }
}

/// Collects the messages of a THREAD command, interning Message-IDs.
#[derive(Debug, Default)]
pub struct Builder {
    ids: HashMap<String, u32>,
    msgs: Vec<ThreadMsg>,
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Builder {
        Builder::default()
    }

    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.ids.get(id) {
            return n;
        }
        let next = self.ids.len() as u32;
        self.ids.insert(id.to_string(), next);
        next
    }

    /// Adds a message (in sequence order): its raw Message-ID, References and
    /// In-Reply-To values (see [`ThreadKeys::of`]).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        id: u32,
        sent: i64,
        message_id: Option<&str>,
        references: Option<&str>,
        in_reply_to: Option<&str>,
        subject: String,
        reply: bool,
    ) {
        let keys = ThreadKeys::of(message_id, references, in_reply_to);
        self.add_keys(id, sent, &keys, subject, reply);
    }

    /// Adds a message (in sequence order) by its normalised IDs.
    pub fn add_keys(
        &mut self,
        id: u32,
        sent: i64,
        keys: &ThreadKeys,
        subject: String,
        reply: bool,
    ) {
        let message_id = keys.message_id.as_deref().map(|m| self.intern(m));
        let references = keys.references.iter().map(|r| self.intern(r)).collect();
        self.msgs.push(ThreadMsg {
            id,
            sent,
            message_id,
            references,
            subject,
            reply,
        });
    }

    /// Threads the messages.
    pub fn build(self, algorithm: ThreadAlgorithm) -> Threads {
        match algorithm {
            ThreadAlgorithm::OrderedSubject => ordered_subject(&self.msgs),
            ThreadAlgorithm::References => references(&self.msgs, self.ids.len(), true),
            ThreadAlgorithm::Refs => references(&self.msgs, self.ids.len(), false),
        }
    }
}

/// ORDEREDSUBJECT (RFC 5256 §3): sorted by base subject then sent date, split into one
/// thread per subject, threads ordered by their first message; the first message is
/// the parent of all the others.
fn ordered_subject(msgs: &[ThreadMsg]) -> Threads {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        (&msgs[a].subject, msgs[a].sent, a).cmp(&(&msgs[b].subject, msgs[b].sent, b))
    });
    let mut t = Threads::default();
    let mut groups: Vec<(i64, usize, usize)> = Vec::new();
    let mut last: Option<&str> = None;
    for i in order {
        let node = t.nodes.len();
        t.nodes.push(Node {
            id: Some(msgs[i].id),
            children: Vec::new(),
        });
        match (last, groups.last()) {
            (Some(s), Some(&(_, _, root))) if s == msgs[i].subject => {
                t.nodes[root].children.push(node)
            }
            _ => groups.push((msgs[i].sent, i, node)),
        }
        last = Some(&msgs[i].subject);
    }
    groups.sort();
    t.roots = groups.into_iter().map(|g| g.2).collect();
    t
}

/// A container of the REFERENCES algorithm: a message or a dummy.
#[derive(Debug, Clone, Default)]
struct Container {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    c: Vec<Container>,
    /// Steps left for the loop checks of step 1 (each walks up from a node). A hostile
    /// mailbox can make every check walk a long chain (quadratic time); once the budget
    /// is spent, links that would need a walk are not made (treated as loops), so THREAD
    /// stays bounded and every message is still in the answer.
    walk_budget: u64,
}

/// [`Arena::walk_budget`]: far beyond what real mailboxes use (100,000 messages in
/// threads 100 deep take 10 million steps).
const WALK_BUDGET: u64 = 200_000_000;

impl Arena {
    fn new_container(&mut self) -> usize {
        self.c.push(Container::default());
        self.c.len() - 1
    }
    /// Whether `node` is `ancestor` or lies below it (true as well once the walk budget
    /// is spent).
    fn is_under(&mut self, mut node: usize, ancestor: usize) -> bool {
        // Nothing lies below a container without children (the common case: a message
        // arriving after the one it replies to), so no walk up a long chain is needed.
        if self.c[ancestor].children.is_empty() {
            return node == ancestor;
        }
        loop {
            if node == ancestor || self.walk_budget == 0 {
                return true;
            }
            self.walk_budget -= 1;
            match self.c[node].parent {
                Some(p) => node = p,
                None => return false,
            }
        }
    }
    fn link(&mut self, parent: usize, child: usize) {
        self.c[child].parent = Some(parent);
        self.c[parent].children.push(child);
    }
    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.c[child].parent.take() {
            self.c[p].children.retain(|&x| x != child);
        }
    }
}

/// REFERENCES (RFC 5256 §3 steps 1-6) and, with `subjects` false, REFS.
fn references(msgs: &[ThreadMsg], ids: usize, subjects: bool) -> Threads {
    let mut a = Arena {
        c: Vec::with_capacity(msgs.len() + ids / 2),
        walk_budget: WALK_BUDGET,
    };
    // Interned ID -> its container.
    let mut by_id: Vec<Option<usize>> = vec![None; ids];
    let mut get = |a: &mut Arena, id: u32| -> usize {
        let slot = &mut by_id[id as usize];
        match *slot {
            Some(c) => c,
            None => {
                let c = a.new_container();
                *slot = Some(c);
                c
            }
        }
    };
    let mut msg_container = vec![0usize; msgs.len()];
    for (i, m) in msgs.iter().enumerate() {
        // (1)(A) The message's own container: a dummy made by an earlier reference is
        // filled; a duplicate or missing Message-ID gets a container of its own.
        let own = match m.message_id {
            Some(id) => {
                let c = get(&mut a, id);
                if a.c[c].msg.is_none() {
                    c
                } else {
                    a.new_container()
                }
            }
            None => a.new_container(),
        };
        a.c[own].msg = Some(i);
        msg_container[i] = own;
        // Link the references as parent/child, keeping existing parents and never
        // making a loop.
        let refs: Vec<usize> = m.references.iter().map(|&r| get(&mut a, r)).collect();
        for w in refs.windows(2) {
            let (p, c) = (w[0], w[1]);
            if p != c && a.c[c].parent.is_none() && !a.is_under(p, c) {
                a.link(p, c);
            }
        }
        // (1)(B) The last reference is the parent of this message (replacing a parent
        // a truncated References line may have given it), unless that makes a loop.
        a.unlink(own);
        if let Some(&p) = refs.last()
            && !a.is_under(p, own)
        {
            a.link(p, own);
        }
    }
    let sent = |a: &Arena, n: usize| a.c[n].msg.map(|i| (msgs[i].sent, i));

    // (2) Roots, (3) dummies pruned: children first, so promoted grandchildren are
    // already clean; a root dummy is only replaced by its child when it has one.
    let mut roots: Vec<usize> = (0..a.c.len())
        .filter(|&n| a.c[n].parent.is_none())
        .collect();
    for n in post_order(&a, &roots) {
        let kids = std::mem::take(&mut a.c[n].children);
        let mut clean = Vec::with_capacity(kids.len());
        for k in kids {
            if a.c[k].msg.is_some() {
                clean.push(k);
            } else {
                clean.append(&mut a.c[k].children);
            }
        }
        for &k in &clean {
            a.c[k].parent = Some(n);
        }
        a.c[n].children = clean;
    }
    roots = roots
        .into_iter()
        .filter_map(|r| match (a.c[r].msg, a.c[r].children.len()) {
            (Some(_), _) => Some(r),
            (None, 0) => None,
            (None, 1) => {
                let k = a.c[r].children[0];
                a.c[k].parent = None;
                Some(k)
            }
            (None, _) => Some(r),
        })
        .collect();

    // Sorting key of a node: its sent date and position; a dummy's is its earliest
    // child's (RFC 5256 §3 steps 4 and 6).
    let key = |a: &Arena, n: usize| -> (i64, usize) {
        sent(a, n).unwrap_or_else(|| {
            a.c[n]
                .children
                .iter()
                .filter_map(|&k| sent(a, k))
                .min()
                .unwrap_or((i64::MAX, usize::MAX))
        })
    };

    if subjects {
        // (4) Roots by sent date.
        roots.sort_by_key(|&r| key(&a, r));
        // (5) Threads with the same base subject merged.
        let subject = |a: &Arena, n: usize| -> Option<usize> {
            match a.c[n].msg {
                Some(i) => Some(i),
                None => a.c[n]
                    .children
                    .iter()
                    .filter_map(|&k| sent(a, k))
                    .min()
                    .map(|(_, i)| i),
            }
        };
        let reply = |a: &Arena, n: usize| a.c[n].msg.is_some_and(|i| msgs[i].reply);
        // (5)(B) The subject table.
        let mut table: HashMap<&str, usize> = HashMap::new();
        for &r in &roots {
            let Some(i) = subject(&a, r) else { continue };
            let s = msgs[i].subject.as_str();
            if s.is_empty() {
                continue;
            }
            match table.get(s) {
                None => {
                    table.insert(s, r);
                }
                Some(&t) => {
                    if a.c[t].msg.is_some()
                        && (a.c[r].msg.is_none() || (reply(&a, t) && !reply(&a, r)))
                    {
                        table.insert(s, r);
                    }
                }
            }
        }
        // (5)(C) Merge. `slot` is where each root sits in `next`.
        let mut next: Vec<Option<usize>> = roots.iter().map(|&r| Some(r)).collect();
        let mut slot: HashMap<usize, usize> =
            roots.iter().enumerate().map(|(k, &r)| (r, k)).collect();
        for &r in &roots {
            if !slot.contains_key(&r) {
                continue;
            }
            let Some(i) = subject(&a, r) else { continue };
            let s = msgs[i].subject.as_str();
            if s.is_empty() {
                continue;
            }
            let Some(&t) = table.get(s) else { continue };
            if t == r {
                continue;
            }
            let remove =
                |slot: &mut HashMap<usize, usize>, next: &mut Vec<Option<usize>>, n: usize| {
                    if let Some(k) = slot.remove(&n) {
                        next[k] = None;
                    }
                };
            let (t_dummy, r_dummy) = (a.c[t].msg.is_none(), a.c[r].msg.is_none());
            if t_dummy && r_dummy {
                let mut kids = std::mem::take(&mut a.c[r].children);
                for &k in &kids {
                    a.c[k].parent = Some(t);
                }
                a.c[t].children.append(&mut kids);
                remove(&mut slot, &mut next, r);
            } else if t_dummy || (reply(&a, r) && !reply(&a, t)) {
                remove(&mut slot, &mut next, r);
                a.link(t, r);
            } else {
                let d = a.new_container();
                let at = slot.remove(&t);
                remove(&mut slot, &mut next, r);
                a.link(d, t);
                a.link(d, r);
                if let Some(k) = at {
                    next[k] = Some(d);
                    slot.insert(d, k);
                }
                table.insert(s, d);
            }
        }
        roots = next.into_iter().flatten().collect();
        // (6) Every set of siblings by sent date, the deepest first; dummies (only at the
        // top) by their earliest child.
        for n in post_order(&a, &roots) {
            let mut kids = std::mem::take(&mut a.c[n].children);
            kids.sort_by_key(|&k| key(&a, k));
            a.c[n].children = kids;
        }
        roots.sort_by_key(|&r| key(&a, r));
    } else {
        // REFS: children by sent date; threads by their newest message.
        let order = post_order(&a, &roots);
        let mut newest: Vec<(i64, usize)> = vec![(i64::MIN, 0); a.c.len()];
        for &n in &order {
            let mut kids = std::mem::take(&mut a.c[n].children);
            kids.sort_by_key(|&k| key(&a, k));
            let own = sent(&a, n).unwrap_or((i64::MIN, usize::MAX));
            newest[n] = kids.iter().map(|&k| newest[k]).fold(own, |x, y| x.max(y));
            a.c[n].children = kids;
        }
        roots.sort_by_key(|&r| (newest[r].0, key(&a, r).1));
    }

    // Out: the arena as a tree of ids, only what hangs under the roots.
    let mut t = Threads {
        nodes: a
            .c
            .iter()
            .map(|c| Node {
                id: c.msg.map(|i| msgs[i].id),
                children: c.children.clone(),
            })
            .collect(),
        roots,
    };
    t.nodes.shrink_to_fit();
    t
}

/// The nodes under `roots`, every child before its parent, without recursion.
fn post_order(a: &Arena, roots: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
    while let Some((n, expanded)) = stack.pop() {
        if expanded {
            out.push(n);
        } else {
            stack.push((n, true));
            stack.extend(a.c[n].children.iter().rev().map(|&k| (k, false)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::sort::{base_subject, casemap};

    /// The tree as THREAD data would print it, for readable assertions.
    fn show(t: &Threads) -> String {
        let mut out = Vec::new();
        t.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    struct M {
        seq: u32,
        date: i64,
        id: &'static str,
        refs: &'static str,
        irt: &'static str,
        subject: &'static str,
    }

    fn m(seq: u32, date: i64, id: &'static str, refs: &'static str, subject: &'static str) -> M {
        M {
            seq,
            date,
            id,
            refs,
            irt: "",
            subject,
        }
    }

    fn run(msgs: &[M], alg: ThreadAlgorithm) -> String {
        let mut b = Builder::new();
        for x in msgs {
            let (s, reply) = base_subject(x.subject);
            b.add(
                x.seq,
                x.date,
                Some(x.id).filter(|s| !s.is_empty()),
                Some(x.refs).filter(|s| !s.is_empty()),
                Some(x.irt).filter(|s| !s.is_empty()),
                casemap(&s),
                reply,
            );
        }
        show(&b.build(alg))
    }

    #[test]
    fn message_ids_are_normalised() {
        let ids: Vec<String> =
            message_ids("<\"01KF8JCEOCBS0045PS\"@xxx.yyy.com> junk <a@b> (c) <>").collect();
        // RFC 5256 §3's own example: quoting does not make a different ID.
        assert_eq!(ids, ["01KF8JCEOCBS0045PS@xxx.yyy.com", "a@b"]);
    }

    /// ORDEREDSUBJECT: one thread per base subject, the first message the parent of
    /// the others (no grandchildren), threads by their first message's date.
    #[test]
    fn ordered_subject_threads() {
        let msgs = [
            m(1, 50, "", "", "Lunch"),
            m(2, 10, "", "", "Dinner"),
            m(3, 60, "", "", "Re: lunch"),
            m(4, 70, "", "", "Re: Re: Lunch"),
            m(5, 20, "", "", "Breakfast"),
            m(6, 40, "", "", "Re: dinner"),
        ];
        assert_eq!(
            run(&msgs, ThreadAlgorithm::OrderedSubject),
            "(2 6)(5)(1 (3)(4))"
        );
        assert_eq!(run(&[], ThreadAlgorithm::OrderedSubject), "");
    }

    /// REFERENCES from References (and In-Reply-To), with dummies for the missing
    /// parents: the RFC 5256 §4 `((3)(5))` shape, siblings by date.
    #[test]
    fn references_with_missing_parents() {
        let msgs = [
            m(1, 10, "<a@x>", "", "Plans"),
            m(2, 30, "<c@x>", "<a@x> <b@x>", "Re: Plans"),
            m(3, 40, "<e@x>", "<gone@x>", "Other"),
            m(4, 20, "<d@x>", "<a@x>", "Re: Plans"),
            m(5, 50, "<f@x>", "<gone@x>", "Another"),
        ];
        // b@x is missing: 2 hangs under a dummy under 1, pruned so 2 is 1's child.
        assert_eq!(
            run(&msgs, ThreadAlgorithm::References),
            "(1 (4)(2))((3)(5))"
        );
        // In-Reply-To when there is no References.
        let mut irt = m(2, 30, "<c@x>", "", "Re: Plans");
        irt.irt = "<a@x> (Alice's message of today)";
        assert_eq!(
            run(
                &[m(1, 10, "<a@x>", "", "Plans"), irt],
                ThreadAlgorithm::References
            ),
            "(1 2)"
        );
    }

    /// Cycles in References never make a loop; a duplicate Message-ID gets its own
    /// container; a message naming itself is not its own parent.
    #[test]
    fn references_cycles_and_duplicates() {
        let msgs = [
            m(1, 10, "<a@x>", "<b@x>", "x"),
            m(2, 20, "<b@x>", "<a@x>", "y"),
            m(3, 30, "<c@x>", "<c@x>", "z"),
            m(4, 40, "<a@x>", "", "w"),
        ];
        let out = run(&msgs, ThreadAlgorithm::References);
        assert_eq!(out, "(2 1)(3)(4)");
        let chain = [
            m(1, 10, "<a@x>", "<c@x> <b@x>", "p"),
            m(2, 20, "<b@x>", "<a@x> <c@x>", "q"),
            m(3, 30, "<c@x>", "<b@x> <a@x>", "r"),
        ];
        let out = run(&chain, ThreadAlgorithm::References);
        let mut seen: Vec<char> = out.chars().filter(|c| c.is_ascii_digit()).collect();
        seen.sort();
        assert_eq!(seen, ['1', '2', '3'], "{out}");
    }

    /// REFERENCES step 5: roots with the same base subject are merged; a reply goes
    /// under the original, two originals under a dummy.
    #[test]
    fn references_merges_subjects() {
        let msgs = [
            m(1, 10, "<a@x>", "", "Party"),
            m(2, 20, "<b@x>", "", "Re: party"),
            m(3, 30, "<c@x>", "", "Party"),
            m(4, 5, "<d@x>", "", "Other"),
            m(5, 40, "<e@x>", "", ""),
            m(6, 50, "<f@x>", "", ""),
        ];
        assert_eq!(
            run(&msgs, ThreadAlgorithm::References),
            "(4)((1 2)(3))(5)(6)"
        );
        // REFS does not merge by subject, and orders threads by their newest message.
        let msgs = [
            m(1, 10, "<a@x>", "", "Party"),
            m(2, 20, "<b@x>", "", "Re: party"),
            m(3, 30, "<c@x>", "<a@x>", "Re: Party"),
            m(4, 25, "<d@x>", "", "Other"),
        ];
        assert_eq!(run(&msgs, ThreadAlgorithm::Refs), "(2)(4)(1 3)");
        assert_eq!(run(&msgs, ThreadAlgorithm::References), "(1 (2)(3))(4)");
    }

    /// 100,000 messages each replying to the one before: threaded and printed without
    /// recursion (a 256 KiB stack is enough).
    #[test]
    fn deep_chains_need_no_stack() {
        let out = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let mut b = Builder::new();
                for i in 0..100_000u32 {
                    let id = format!("<{i}@x>");
                    let parent = format!("<{}@x>", i.wrapping_sub(1));
                    b.add(
                        i + 1,
                        i64::from(i),
                        Some(&id),
                        (i > 0).then_some(parent.as_str()),
                        None,
                        String::new(),
                        false,
                    );
                }
                let t = b.build(ThreadAlgorithm::References);
                show(&t).len()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(out > 500_000);
    }

    /// A mailbox made so that every loop check walks a long chain (quadratic without the
    /// walk budget) still threads in bounded time, with every message in the answer.
    #[test]
    fn hostile_references_are_bounded() {
        let k = 15_000u32;
        let mut b = Builder::new();
        let mut seq = 0;
        let mut add = |b: &mut Builder, id: String, refs: Option<String>| {
            seq += 1;
            b.add(
                seq,
                0,
                Some(&id),
                refs.as_deref(),
                None,
                String::new(),
                false,
            );
        };
        // k messages under k dummies <h..> (which then have children), a chain k deep,
        // then the messages <h..> themselves replying to the bottom of the chain: each
        // loop check walks the whole chain.
        for i in 0..k {
            add(&mut b, format!("<a{i}@x>"), Some(format!("<h{i}@x>")));
        }
        for i in 0..k {
            add(
                &mut b,
                format!("<c{i}@x>"),
                (i > 0).then(|| format!("<c{}@x>", i - 1)),
            );
        }
        for i in 0..k {
            add(&mut b, format!("<h{i}@x>"), Some(format!("<c{}@x>", k - 1)));
        }
        let t = std::time::Instant::now();
        let out = show(&b.build(ThreadAlgorithm::Refs));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "{:?}",
            t.elapsed()
        );
        let count = out
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .count();
        assert_eq!(count, 3 * k as usize);
    }
}

//! CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): PARTIAL, live results with UPDATE,
//! their ADDTO / REMOVEFROM updates as another session delivers, flags and expunges,
//! CANCELUPDATE and the NOUPDATE refusals. Uses the session transcript runner.

use super::*;

/// Sets flags on (or expunges) messages from a second session, as another client would.
fn other_client(f: &Fixture, cmds: &[u8]) {
    let mut o = f.logged_in();
    let out = f.run(&mut o, b"s SELECT INBOX\r\n");
    assert!(out.contains("s OK"), "{out}");
    let out = f.run(&mut o, cmds);
    assert!(!out.contains(" NO ") && !out.contains(" BAD "), "{out}");
}

fn message(subject: &str) -> Vec<u8> {
    format!("From: x@x.example\r\nSubject: {subject}\r\n\r\nbody\r\n").into_bytes()
}

#[test]
fn context_capabilities_are_advertised() {
    let f = fixture();
    let mut s = f.logged_in();
    let out = f.run(&mut s, b"c CAPABILITY\r\n");
    assert!(out.contains(" ESORT CONTEXT=SEARCH CONTEXT=SORT "), "{out}");
}

/// RFC 5267 §4.4 PARTIAL on SEARCH: positions in the ascending result; NIL beyond it.
/// CONTEXT (§4.2) is a hint and changes nothing.
#[test]
fn search_partial_and_context_hint() {
    let f = fixture();
    for i in 0..5 {
        f.deliver(&message(&format!("m{i}")));
    }
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(
        &mut s,
        b"a UID SEARCH RETURN (PARTIAL 2:3 COUNT) 2:*\r\nb SEARCH RETURN (PARTIAL 4:1) ALL\r\nc SEARCH RETURN (PARTIAL 9:12 CONTEXT) ALL\r\n",
    );
    assert_eq!(
        out,
        "* ESEARCH (TAG \"a\") UID PARTIAL (2:3 3:4) COUNT 4\r\na OK SEARCH completed\r\n\
         * ESEARCH (TAG \"b\") PARTIAL (1:4 1:4)\r\nb OK SEARCH completed\r\n\
         * ESEARCH (TAG \"c\") PARTIAL (9:12 NIL)\r\nc OK SEARCH completed\r\n"
    );
}

/// RFC 5267 §4.3 with SEARCH: new matching mail is added, a flag change that makes a
/// message stop (or start) matching removes (adds) it, an expunge removes it; position 0
/// and one set per update, as in the RFC's example `ADDTO (0 32768:32769)`.
#[test]
fn live_uid_search_follows_delivery_flags_and_expunge() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(&message(&format!("m{i}")));
    }
    let mut a = f.logged_in();
    f.run(&mut a, b"s SELECT INBOX\r\n");
    let out = f.run(&mut a, b"B01 UID SEARCH RETURN (ALL UPDATE) UNSEEN\r\n");
    assert_eq!(
        out,
        "* ESEARCH (TAG \"B01\") UID ALL 1:3\r\nB01 OK SEARCH completed\r\n"
    );
    // Two arrive: one ADDTO with both.
    f.deliver(&message("m3"));
    f.deliver(&message("m4"));
    let out = f.run(&mut a, b"n NOOP\r\n");
    assert!(
        out.contains("* 5 EXISTS\r\n")
            && out.contains("* ESEARCH (TAG \"B01\") UID ADDTO (0 4:5)\r\n"),
        "{out}"
    );
    assert!(
        out.find("EXISTS").unwrap() < out.find("ADDTO").unwrap(),
        "{out}"
    );
    // Another client reads message 2: it leaves the UNSEEN result.
    other_client(&f, b"x UID STORE 2 +FLAGS (\\Seen)\r\n");
    let out = f.run(&mut a, b"n NOOP\r\n");
    assert!(
        out.contains("* ESEARCH (TAG \"B01\") UID REMOVEFROM (0 2)\r\n"),
        "{out}"
    );
    // Marked unread again: back in.
    other_client(&f, b"x UID STORE 2 -FLAGS (\\Seen)\r\n");
    let out = f.run(&mut a, b"n NOOP\r\n");
    assert!(
        out.contains("* ESEARCH (TAG \"B01\") UID ADDTO (0 2)\r\n"),
        "{out}"
    );
    // A flag the criteria do not look at: no update.
    other_client(&f, b"x UID STORE 3 +FLAGS (\\Flagged)\r\n");
    let out = f.run(&mut a, b"n NOOP\r\n");
    assert!(!out.contains("ESEARCH"), "{out}");
    // Expunged: removed.
    other_client(&f, b"x UID STORE 1,4 +FLAGS (\\Deleted)\r\ny EXPUNGE\r\n");
    let out = f.run(&mut a, b"u UID FETCH 1:* (UID)\r\n");
    assert!(
        out.contains("* ESEARCH (TAG \"B01\") UID REMOVEFROM (0 1,4)\r\n"),
        "{out}"
    );
}

/// A live SEARCH by message numbers: removals name the numbers the client holds before
/// the EXPUNGE responses that follow them; additions the numbers after EXISTS. Nothing
/// goes out while EXPUNGE is withheld (during FETCH), and it all comes at the next
/// command that may report expunges.
#[test]
fn live_search_by_number_reports_before_expunge() {
    let f = fixture();
    for i in 0..4 {
        f.deliver(&message(&format!("m{i}")));
    }
    let mut a = f.logged_in();
    f.run(&mut a, b"s SELECT INBOX\r\n");
    let out = f.run(&mut a, b"t SEARCH RETURN (UPDATE) ALL\r\n");
    assert_eq!(out, "* ESEARCH (TAG \"t\")\r\nt OK SEARCH completed\r\n");
    other_client(&f, b"x STORE 2 +FLAGS (\\Deleted)\r\ny EXPUNGE\r\n");
    f.deliver(&message("m4"));
    // FETCH withholds the expunge: no update yet.
    let out = f.run(&mut a, b"f FETCH 1 (UID)\r\n");
    assert!(!out.contains("ESEARCH"), "{out}");
    let out = f.run(&mut a, b"n NOOP\r\n");
    assert!(
        out.starts_with("* ESEARCH (TAG \"t\") REMOVEFROM (0 2)\r\n* 2 EXPUNGE\r\n"),
        "{out}"
    );
    // Message 5 became number 4 with the expunge (EXISTS went out during the FETCH).
    assert!(
        out.contains("* 2 EXPUNGE\r\n* ESEARCH (TAG \"t\") ADDTO (0 4)\r\nn OK"),
        "{out}"
    );
}

/// RFC 5267 §4.3, §4.4 with SORT: each update names the message's position in the
/// sorted result; removals are counted in the list as it is before them, additions in
/// the new list, in ascending position.
#[test]
fn live_sort_reports_positions() {
    let (f, mut s) = sort_fixture();
    // Base subjects: 3 dinner, then 1, 2, 4 (all "lunch", by arrival).
    let out = f.run(
        &mut s,
        b"C01 UID SORT RETURN (ALL UPDATE) (SUBJECT) UTF-8 UNSEEN\r\n",
    );
    assert_eq!(
        out,
        "* ESEARCH (TAG \"C01\") UID ALL 3,1:2,4\r\nC01 OK SORT completed\r\n"
    );
    let u5 = f.deliver(&message("Breakfast"));
    let u6 = f.deliver(&message("Kale"));
    let out = f.run(&mut s, b"n NOOP\r\n");
    // New order: 5 breakfast, 3 dinner, 6 kale, 1, 2, 4.
    assert!(
        out.contains(&format!(
            "* ESEARCH (TAG \"C01\") UID ADDTO (1 {u5} 3 {u6})\r\n"
        )),
        "{out}"
    );
    // Message 1 (position 4) read elsewhere, message 3 (position 2) expunged.
    other_client(
        &f,
        b"x UID STORE 1 +FLAGS (\\Seen)\r\ny UID STORE 3 +FLAGS (\\Deleted)\r\nz EXPUNGE\r\n",
    );
    let out = f.run(&mut s, b"n NOOP\r\n");
    assert!(
        out.contains("* ESEARCH (TAG \"C01\") UID REMOVEFROM (4 1 2 3)\r\n"),
        "{out}"
    );
    // Back to unread: it returns to position 3 (5, 6, 1, 2, 4).
    other_client(&f, b"x UID STORE 1 -FLAGS (\\Seen)\r\n");
    let out = f.run(&mut s, b"n NOOP\r\n");
    assert!(
        out.contains("* ESEARCH (TAG \"C01\") UID ADDTO (3 1)\r\n"),
        "{out}"
    );
}

/// A live SORT by message numbers: the numbers shift with an expunge, the positions
/// follow the sorted list.
#[test]
fn live_sort_by_number() {
    let (f, mut s) = sort_fixture();
    let out = f.run(
        &mut s,
        b"d SORT RETURN (UPDATE PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL\r\n",
    );
    // Reverse: 1 2 4 (lunch, by arrival, the ties keep arrival order) then 3.
    assert_eq!(
        out,
        "* ESEARCH (TAG \"d\") PARTIAL (1:2 1:2)\r\nd OK SORT completed\r\n"
    );
    other_client(&f, b"x STORE 1 +FLAGS (\\Deleted)\r\ny EXPUNGE\r\n");
    f.deliver(&message("Zucchini"));
    let out = f.run(&mut s, b"n NOOP\r\n");
    // Removed: message 1 at position 1. Then message 4 (after the expunge), "zucchini",
    // at the head of the reverse order.
    assert!(
        out.starts_with("* ESEARCH (TAG \"d\") REMOVEFROM (1 1)\r\n* 1 EXPUNGE\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* ESEARCH (TAG \"d\") ADDTO (1 4)\r\n"),
        "{out}"
    );
}

/// IDLE carries the updates too.
#[test]
fn live_result_updates_during_idle() {
    let f = fixture();
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(
        &mut s,
        b"a UID SEARCH RETURN (COUNT UPDATE) SUBJECT news\r\n",
    );
    assert_eq!(
        out,
        "* ESEARCH (TAG \"a\") UID COUNT 0\r\na OK SEARCH completed\r\n"
    );
    f.run(&mut s, b"i IDLE\r\n");
    let mut rx = f.store.subscribe();
    f.deliver(&message("Other"));
    let u = f.deliver(&message("Good news"));
    for _ in 0..2 {
        let change = rx.try_recv().unwrap();
        s.notify(Some(&change));
    }
    let out = f.drive(&mut s);
    assert!(
        out.ends_with(&format!("* ESEARCH (TAG \"a\") UID ADDTO (0 {u})\r\n")),
        "{out}"
    );
    assert_eq!(f.run(&mut s, b"DONE\r\n"), "i OK IDLE terminated\r\n");
}

/// CANCELUPDATE ends a live result (and only the named ones); an unknown tag is BAD and
/// cancels nothing; leaving the mailbox ends them all.
#[test]
fn cancelupdate_and_deselect_end_live_results() {
    let f = fixture();
    f.deliver(&message("a"));
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    f.run(
        &mut s,
        b"a UID SEARCH RETURN (UPDATE) ALL\r\nb UID SEARCH RETURN (UPDATE) ALL\r\nc UID SEARCH RETURN (UPDATE) ALL\r\n",
    );
    let out = f.run(&mut s, b"x CANCELUPDATE \"a\" \"zz\"\r\n");
    assert!(out.starts_with("x BAD "), "{out}");
    let out = f.run(&mut s, b"x CANCELUPDATE \"a\" \"c\"\r\n");
    assert_eq!(out, "x OK CANCELUPDATE completed\r\n");
    let u = f.deliver(&message("b"));
    let out = f.run(&mut s, b"n NOOP\r\n");
    assert!(
        out.contains(&format!("* ESEARCH (TAG \"b\") UID ADDTO (0 {u})\r\n")),
        "{out}"
    );
    assert!(
        !out.contains("TAG \"a\"") && !out.contains("TAG \"c\""),
        "{out}"
    );
    // A new selection starts with none.
    f.run(&mut s, b"s SELECT INBOX\r\n");
    f.deliver(&message("c"));
    let out = f.run(&mut s, b"n NOOP\r\n");
    assert!(!out.contains("ESEARCH"), "{out}");
    let out = f.run(&mut s, b"x CANCELUPDATE \"b\"\r\n");
    assert!(out.starts_with("x BAD "), "{out}");
    // Not in the Authenticated state.
    f.run(&mut s, b"u UNSELECT\r\n");
    let out = f.run(&mut s, b"x CANCELUPDATE \"b\"\r\n");
    assert!(out.starts_with("x BAD "), "{out}");
}

/// RFC 5267 §4.3 NOUPDATE: the eleventh live result, a tag already live, and a search
/// that uses `$` get the result but no updates; the command itself succeeds.
#[test]
fn noupdate_refusals() {
    let f = fixture();
    f.deliver(&message("a"));
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    for i in 0..MAX_CONTEXTS {
        let out = f.run(
            &mut s,
            format!("t{i} UID SEARCH RETURN (UPDATE) ALL\r\n").as_bytes(),
        );
        assert_eq!(
            out,
            format!("* ESEARCH (TAG \"t{i}\") UID\r\nt{i} OK SEARCH completed\r\n")
        );
    }
    let out = f.run(
        &mut s,
        b"over UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 ALL\r\n",
    );
    assert_eq!(
        out,
        "* ESEARCH (TAG \"over\") UID COUNT 1\r\n* NO [NOUPDATE \"over\"] Too many live results (10 at most)\r\nover OK SORT completed\r\n"
    );
    let out = f.run(&mut s, b"t0 UID SEARCH RETURN (UPDATE) ALL\r\n");
    assert!(
        out.contains("* NO [NOUPDATE \"t0\"] A live result already has this tag\r\n"),
        "{out}"
    );
    f.run(&mut s, b"x CANCELUPDATE \"t1\"\r\n");
    let out = f.run(
        &mut s,
        b"sv SEARCH RETURN (SAVE) ALL\r\nd UID SEARCH RETURN (UPDATE ALL) UID $\r\n",
    );
    assert!(
        out.contains("* ESEARCH (TAG \"d\") UID ALL 1\r\n* NO [NOUPDATE \"d\"] "),
        "{out}"
    );
    // With one slot free (t1 cancelled), SAVE and UPDATE together are fine: SAVE keeps
    // the result of the moment (RFC 5182), UPDATE follows it.
    let out = f.run(&mut s, b"e SEARCH RETURN (SAVE UPDATE) ALL\r\n");
    assert_eq!(out, "* ESEARCH (TAG \"e\")\r\ne OK SEARCH completed\r\n");
}

#[test]
fn cancelupdate_parses_and_round_trips() {
    let cmd = parse_command(b"A1 CANCELUPDATE \"B01\" \"x y\"\r\n").unwrap();
    assert_eq!(
        cmd.body,
        CommandBody::CancelUpdate(vec!["B01".into(), "x y".into()])
    );
    let again = parse_command(&cmd.encode()).unwrap();
    assert_eq!(again, cmd);
    for bad in [
        &b"A1 CANCELUPDATE\r\n"[..],
        b"A1 CANCELUPDATE B01\r\n",
        b"A1 CANCELUPDATE \"B01\" \r\n",
    ] {
        assert!(parse_command(bad).is_err(), "{bad:?}");
    }
}

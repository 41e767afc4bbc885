#!/usr/bin/env python3
"""Driver of benches/spam.sh: talks to a running letterbox as a person's mail client
would. Subcommands:

  dns PORT                    a loopback DNS server answering NXDOMAIN to everything
  deliver SMTP_PORT MBOX      deliver each message of MBOX over port 25 (smtplib)
  train IMAP_PORT             in INBOX, UID MOVE the spam to Junk, set $NotJunk on the ham
  count IMAP_PORT MIN_ID      for messages with Message-ID number >= MIN_ID: where each
                              class ended up (Junk or INBOX)
The class of a generated message is in its Message-ID: <n.1@..> spam, <n.0@..> ham.
"""
import imaplib, mailbox, re, smtplib, socket, sys

USER, PW = "alice@home.arpa", "bench-password-1"


def dns(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", int(port)))
    while True:
        q, addr = s.recvfrom(512)
        if len(q) < 12:
            continue
        # Same id and question, QR=1 RD RA, RCODE=3 (NXDOMAIN), no answers (RFC 1035 §4.1.1).
        s.sendto(q[:2] + b"\x81\x83" + q[4:6] + b"\x00\x00\x00\x00\x00\x00" + q[12:], addr)


def deliver(port, path):
    n = 0
    with smtplib.SMTP("127.0.0.1", int(port), timeout=60) as c:
        for m in mailbox.mbox(path):
            raw = m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            c.sendmail("sender@example.net", [USER], raw)
            n += 1
    print(n)


def login(port):
    m = imaplib.IMAP4("127.0.0.1", int(port), timeout=120)
    m.login(USER, PW)
    return m


def ids(m):
    """(uid, number, is_spam) of every message of the selected mailbox."""
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid = re.search(rb"UID (\d+)", item[0]).group(1).decode()
        mid = re.search(rb"<(\d+)\.(\d)@", item[1])
        if mid:
            out.append((uid, int(mid.group(1)), mid.group(2) == b"1"))
    return out


def train(port):
    m = login(port)
    m.select("INBOX")
    msgs = ids(m)
    spam = [u for u, _, s in msgs if s]
    ham = [u for u, _, s in msgs if not s]
    for i in range(0, len(spam), 200):
        typ, _ = m.uid("MOVE", ",".join(spam[i:i + 200]), "Junk")
        assert typ == "OK"
    for i in range(0, len(ham), 200):
        typ, _ = m.uid("STORE", ",".join(ham[i:i + 200]), "+FLAGS", "($NotJunk)")
        assert typ == "OK"
    m.logout()
    print(len(spam), len(ham))


def count(port, min_id):
    m = login(port)
    res = {}
    for box in ("INBOX", "Junk"):
        m.select(box, readonly=True)
        for _, n, s in ids(m):
            if n >= int(min_id):
                key = (box, "spam" if s else "ham")
                res[key] = res.get(key, 0) + 1
    m.logout()
    spam_total = res.get(("INBOX", "spam"), 0) + res.get(("Junk", "spam"), 0)
    ham_total = res.get(("INBOX", "ham"), 0) + res.get(("Junk", "ham"), 0)
    caught = res.get(("Junk", "spam"), 0)
    wrong = res.get(("Junk", "ham"), 0)
    print("letterbox: spam caught %d/%d (%.2f %%), ham wrongly junked %d/%d (%.2f %%)" % (
        caught, spam_total, 100.0 * caught / max(spam_total, 1),
        wrong, ham_total, 100.0 * wrong / max(ham_total, 1)))


if __name__ == "__main__":
    {"dns": dns, "deliver": deliver, "train": train, "count": count}[sys.argv[1]](*sys.argv[2:])

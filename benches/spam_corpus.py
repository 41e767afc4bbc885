#!/usr/bin/env python3
"""A generated spam/ham corpus for benches/spam.sh (no public corpus ships in Debian or
PyPI packages we can use: SpamAssassin's Debian package carries two sample messages).

Writes OUT/{train,test}/{spam,ham}.mbox. Seeded, so runs are comparable.

Ham: family notes, school and club messages, receipts and shipping notices from real
shops, newsletters, calendar invitations, work mail; English, German, French, Spanish;
plain, HTML, quoted-printable and base64 bodies, replies with quoted text.
Spam: pharmacy, loans, crypto, lottery and inheritance, phishing ("verify your account"),
fake shops, dating; obfuscated words (v1agra, s p a c e d, l33t), HTML with links,
base64 and QP bodies, the same languages. Both sides share a common vocabulary (orders,
accounts, payments, links), so the words alone do not separate them.
"""
import base64, os, quopri, random, sys

N_TRAIN = int(os.environ.get("N_TRAIN", "600"))
N_TEST = int(os.environ.get("N_TEST", "1000"))
rnd = random.Random(int(os.environ.get("SEED", "2026")))

COMMON = ("order account payment link click here today please your the and for with "
          "information update new offer price free delivery thank you best regards team "
          "week now time help service email address online details confirm").split()

HAM = {
    "en": {
        "subj": ["dinner on {day}?", "school trip form", "photos from the weekend",
                 "Your order #{n} has shipped", "Re: football practice moved",
                 "Minutes of the {day} meeting", "Library books due {day}",
                 "Invitation: dentist appointment {day}", "Re: birthday cake for {name}",
                 "Newsletter: garden club {month}", "Receipt for your payment",
                 "Re: holiday plans", "Your statement is ready"],
        "words": ("dinner kids grandma school trip homework weekend photos garden "
                  "football practice library books dentist appointment birthday cake "
                  "holiday train tickets neighbours bicycle repair cousin wedding soup "
                  "recipe meeting minutes agenda project budget report draft review "
                  "shipped tracking parcel receipt statement invoice club members "
                  "volunteers coffee lunch friday monday tomorrow evening morning love "
                  "mum dad thanks see you soon cheers").split(),
    },
    "de": {
        "subj": ["Abendessen am {day}?", "Fotos vom Wochenende", "Elternabend {day}",
                 "Ihre Bestellung #{n} wurde versandt", "Re: Geburtstag von {name}",
                 "Protokoll der Sitzung", "Termin beim Zahnarzt"],
        "words": ("Abendessen Kinder Oma Schule Ausflug Hausaufgaben Wochenende Fotos "
                  "Garten Fußball Training Bibliothek Bücher Termin Zahnarzt Geburtstag "
                  "Kuchen Urlaub Zug Fahrkarten Nachbarn Fahrrad Reparatur Hochzeit "
                  "Suppe Rezept Sitzung Protokoll Projekt Bericht Rechnung Paket "
                  "Sendungsverfolgung morgen Abend Grüße bis bald danke liebe").split(),
    },
    "fr": {
        "subj": ["Dîner {day} ?", "Photos du week-end", "Réunion des parents",
                 "Votre commande #{n} a été expédiée", "Re: anniversaire de {name}"],
        "words": ("dîner enfants mamie école sortie devoirs week-end photos jardin "
                  "football entraînement bibliothèque livres rendez-vous dentiste "
                  "anniversaire gâteau vacances train billets voisins vélo mariage "
                  "soupe recette réunion compte-rendu projet facture colis demain "
                  "soir bises à bientôt merci").split(),
    },
    "es": {
        "subj": ["¿Cena el {day}?", "Fotos del fin de semana", "Reunión de padres",
                 "Su pedido #{n} ha sido enviado", "Re: cumpleaños de {name}"],
        "words": ("cena niños abuela escuela excursión deberes fin semana fotos jardín "
                  "fútbol entrenamiento biblioteca libros cita dentista cumpleaños "
                  "pastel vacaciones tren billetes vecinos bicicleta boda sopa receta "
                  "reunión acta proyecto factura paquete mañana tarde besos hasta "
                  "pronto gracias").split(),
    },
}

SPAM = {
    "en": {
        "subj": ["Cheap meds without prescription", "You have WON ${n},000,000",
                 "URGENT: verify your account now", "Get a loan approved in 5 minutes",
                 "Crypto profits guaranteed: {n}% per week", "Lonely? Meet singles tonight",
                 "Replica watches {n}% OFF", "Your package could not be delivered",
                 "Final notice: your mailbox is full", "Inheritance of {n} million USD"],
        "words": ("viagra cialis pharmacy pills prescription cheap discount winner won "
                  "lottery prize claim million dollars inheritance beneficiary bank "
                  "transfer urgent verify account suspended password login security "
                  "loan approved credit instant cash crypto bitcoin investment profit "
                  "guaranteed returns singles dating lonely meet replica watches luxury "
                  "brand outlet limited offer act now unsubscribe exclusive deal bonus "
                  "casino spins jackpot weight loss miracle").split(),
    },
    "de": {
        "subj": ["Sie haben {n}.000 € gewonnen", "Konto gesperrt: jetzt bestätigen",
                 "Kredit ohne Schufa", "Potenzmittel günstig"],
        "words": ("gewonnen Gewinn Lotterie Konto gesperrt bestätigen Passwort "
                  "Sicherheit Kredit Schufa sofort Bargeld Bitcoin Rendite garantiert "
                  "günstig Rabatt Angebot exklusiv jetzt handeln Potenzmittel Apotheke "
                  "rezeptfrei Casino Bonus Freispiele").split(),
    },
    "fr": {
        "subj": ["Vous avez gagné {n} 000 €", "Votre compte est suspendu",
                 "Crédit rapide sans justificatif", "Montres de luxe à prix cassés"],
        "words": ("gagné gagnant loterie compte suspendu vérifier mot de passe sécurité "
                  "crédit rapide argent bitcoin investissement rendement garanti "
                  "rencontres célibataires montres luxe prix cassés offre exclusive "
                  "casino bonus pharmacie pilules").split(),
    },
    "es": {
        "subj": ["Ha ganado {n}.000 €", "Su cuenta ha sido suspendida",
                 "Préstamo rápido aprobado", "Relojes de lujo baratos"],
        "words": ("ganado ganador lotería cuenta suspendida verificar contraseña "
                  "seguridad préstamo rápido dinero bitcoin inversión ganancias "
                  "garantizadas citas solteros relojes lujo baratos oferta exclusiva "
                  "casino bono farmacia pastillas").split(),
    },
}

NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "March", "May", "July", "September", "November"]
HAM_SENDERS = ["mum@family.example", "dad@family.example", "anna@friends.example",
               "school@school.example", "club@garden-club.example",
               "orders@shop.example", "noreply@bank.example", "colleague@work.example",
               "news@library.example", "coach@football.example"] + [
               "friend%d@mail%d.example" % (i, i % 7) for i in range(40)]
SPAM_DOMAINS = ["cheap-meds%d.example", "win-big%d.example", "secure-verify%d.example",
                "fastloan%d.example", "cryptoprofit%d.example", "luxury-outlet%d.example"]


def obfuscate(word):
    r = rnd.random()
    if r < 0.12:
        return word.replace("a", "4").replace("e", "3").replace("i", "1").replace("o", "0")
    if r < 0.20:
        return " ".join(word)
    if r < 0.26:
        return word.upper()
    if r < 0.30:
        return "-".join(word)
    return word


def words(pool, n, spam, other):
    """Words of the class's pool, the common vocabulary, and some of the other class's
    (ham newsletters that sell; spam padded with ordinary words to poison filters)."""
    out = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.6:
            w = rnd.choice(pool)
        elif r < (0.78 if spam else 0.88):
            w = rnd.choice(COMMON)
        else:
            w = rnd.choice(other)
        out.append(obfuscate(w) if spam else w)
    return " ".join(out)


def paragraph(pool, spam, other):
    return "\n".join(words(pool, rnd.randint(8, 16), spam, other) + "." for _ in range(rnd.randint(2, 6)))


def fill(s):
    return s.format(day=rnd.choice(DAYS), n=rnd.randint(2, 999), name=rnd.choice(NAMES),
                    month=rnd.choice(MONTHS))


def encode_header(s):
    if all(ord(c) < 128 for c in s):
        return s
    return "=?utf-8?b?%s?=" % base64.b64encode(s.encode()).decode()


def message(i, spam):
    table = SPAM if spam else HAM
    lang = rnd.choices(["en", "de", "fr", "es"], [6, 2, 1, 1])[0]
    t = table[lang]
    subject = fill(rnd.choice(t["subj"]))
    other = (HAM if spam else SPAM)[lang]["words"]
    text = "\n\n".join(paragraph(t["words"], spam, other) for _ in range(rnd.randint(1, 3)))
    if spam:
        dom = rnd.choice(SPAM_DOMAINS) % rnd.randint(1, 400)
        sender = "%s@%s" % (rnd.choice(["info", "support", "promo", "no-reply", "win"]), dom)
        link = "http://%s/%s?id=%d" % (dom, rnd.choice(["claim", "verify", "buy", "login"]), i)
        text += "\n\n%s: %s\n" % (rnd.choice(["Click here", "Klicken Sie hier", "Cliquez ici", "Haga clic"]), link)
    else:
        sender = rnd.choice(HAM_SENDERS)
        if rnd.random() < 0.3:
            quoted = paragraph(t["words"], False, other).replace("\n", "\n> ")
            text += "\n\nOn %s, %s wrote:\n> %s\n" % (rnd.choice(DAYS), rnd.choice(NAMES), quoted)
        if rnd.random() < 0.2:
            text += "\nhttps://%s/%s\n" % (sender.split("@")[1], rnd.choice(["orders", "events", "news"]))
    html = rnd.random() < (0.6 if spam else 0.25)
    if html:
        paras = "".join("<p>%s</p>" % p for p in text.split("\n\n"))
        paras = paras.replace("http://", '<a href="http://').replace("?id=", "?id=")
        body = "<html><body>%s</body></html>" % paras
        ctype = "text/html"
    else:
        body = text
        ctype = "text/plain"
    enc = rnd.choices(["8bit", "quoted-printable", "base64"], [5, 3, 2])[0]
    raw_body = body.encode()
    if enc == "base64":
        payload = base64.encodebytes(raw_body).decode()
    elif enc == "quoted-printable":
        payload = quopri.encodestring(raw_body).decode()
    else:
        payload = body
    name = rnd.choice(NAMES) if not spam else rnd.choice(["Support", "Winner Team", "Pharmacy", "Security"])
    head = (
        "From: %s <%s>\r\nTo: alice@home.arpa\r\nSubject: %s\r\n"
        "Date: Mon, 7 Dec 2026 01:%02d:%02d +0000\r\nMessage-ID: <%d.%d@%s>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: %s; charset=utf-8\r\n"
        "Content-Transfer-Encoding: %s\r\n"
        % (name, sender, encode_header(subject), i % 60, i % 60, i, spam, sender.split("@")[1],
           ctype, enc)
    )
    return (head + "\r\n" + payload.replace("\r\n", "\n").replace("\n", "\r\n")).encode()


def write_mbox(path, msgs):
    with open(path, "wb") as f:
        for m in msgs:
            f.write(b"From sender@example.net Mon Dec  7 01:00:00 2026\n")
            body = m.replace(b"\r\n", b"\n")
            body = b"\n".join((b">" + l) if l.lstrip(b">").startswith(b"From ") else l
                              for l in body.split(b"\n"))
            f.write(body + b"\n\n")


def main():
    out = sys.argv[1]
    for part, n in (("train", N_TRAIN), ("test", N_TEST)):
        os.makedirs(os.path.join(out, part), exist_ok=True)
        base = 0 if part == "train" else 100000
        write_mbox(os.path.join(out, part, "spam.mbox"), [message(base + i, True) for i in range(n)])
        write_mbox(os.path.join(out, part, "ham.mbox"), [message(base + i, False) for i in range(n)])


if __name__ == "__main__":
    main()

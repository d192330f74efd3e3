#!/usr/bin/env python3
"""Writes the Sentinel's labelled corpus (sentinel-corpus.jsonl) deterministically.

Every sentence is built from a template written by the Rampart authors and values drawn from
lists in this file (names of real-world frequency, valid-by-construction identifiers with their
checksums). Spans are labelled at generation time, so the labels are exact. Run:

    python3 crates/rampart-sentinel/corpus/generate.py > crates/rampart-sentinel/corpus/sentinel-corpus.jsonl

No third-party package is needed; the output is committed so tests and benchmarks never generate.
"""
import json
import random
import string
import sys

R = random.Random(20261122)

# Names chosen for spread across regions and spelling shapes; roughly a third are absent from the
# detector's census lists, so recall on them measures context, not memory.
FIRST = """James Mary Robert Patricia Michael Jennifer William Linda David Elizabeth Richard Barbara
Joseph Susan Thomas Jessica Charles Sarah Christopher Karen Daniel Lisa Matthew Nancy Anthony Betty
Mark Sandra Donald Ashley Steven Kimberly Andrew Emily Kenneth Donna Joshua Michelle Kevin Carol
Brian Amanda George Melissa Timothy Deborah Priya Arjun Wei Mei Hiroshi Yuki Fatima Omar Aisha
Mohammed Chinedu Ngozi Kwame Ama Olga Dmitri Sven Ingrid Lucia Mateo Camila Santiago Valentina
Siobhan Declan Aoife Niamh Tariq Leila Farah Javier Rosa Thabo Zanele Anh Minh Jae-won Seo-yeon
Kofi Adaeze Rahul Ananya Sakura Haruto Bogdan Katarzyna Joaquim Ines Yusuf Elif Noor Zara Esther
Malak Tomasz Oksana Aurelien Margaux Giulia Lorenzo Freya Callum Isla Rhys Ffion Tane Aroha""".split()
LAST = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez
Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Patel
Sharma Venkataraman Okafor Adeyemi Mensah Nakamura Tanaka Kowalski Novak Petrov Ivanova Schmidt
Muller Rossi Bianchi Dubois Lefebvre Fernandes Silva Haddad Khalil Nasser Chen Wang Zhang Liu Kim
Park Choi Oyelaran Thorsdottir Nakashima Achterberg Vasquez-Ortega O'Sullivan McAllister Fitzgerald
Abernathy Kaczmarek Brzezinski Szabo Horvath Mwangi Otieno Banda Dlamini Okonkwo Eze Balogun
Lindqvist Johansson Haugen Virtanen Korhonen Papadopoulos Georgiou Yilmaz Demir Karimi Hosseini
Rahman Chowdhury Siddiqui Iyer Nair Reddy Gupta Mukherjee Tran Pham Hoang Castellanos Quispe
Mamani Alvarado Whitfield Pemberton Ashworth Ravenscroft""".split()
TITLES = ["Dr.", "Mr.", "Mrs.", "Ms.", "Prof."]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "gmail.com", "outlook.com",
           "acme.io", "uni.example.edu", "example.co.uk", "posteo.de", "proton.me"]
STREETS = """Maple Oak Pine Cedar Elm Washington Lincoln Park Lake Hill Sunset Highland Jefferson
Franklin Madison Church Mill River Spring Valley Meadow Forest Willow Birch Chestnut Walnut Jackson
Evergreen Magnolia Sycamore Dogwood Hawthorne Juniper Lakeview Ridgecrest Fairview Brookside""".split()
STYPES = ["Street", "St.", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln",
          "Drive", "Dr", "Court", "Ct", "Place", "Way", "Terrace", "Parkway", "Circle", "Trail"]
CITIES = [("Springfield", "IL", "62704"), ("Denver", "CO", "80203"), ("Austin", "TX", "78701"),
          ("Portland", "OR", "97205"), ("Madison", "WI", "53703"), ("Raleigh", "NC", "27601"),
          ("Columbus", "OH", "43215"), ("Tucson", "AZ", "85701"), ("Boise", "ID", "83702"),
          ("Albany", "NY", "12207"), ("Savannah", "GA", "31401"), ("Fresno", "CA", "93721")]
UK_ADDR = ["10 Downing Street, London SW1A 2AA", "221B Baker Street, London NW1 6XE",
           "14 Kings Road, Reading RG1 3AA", "7 Victoria Crescent, Leeds LS6 1AB",
           "52 Queen Street, Glasgow G1 3DN", "3 Church Lane, Bristol BS1 5TR"]
FOREIGN_ADDR = ["Hauptstraße 12, 10115 Berlin", "Lindenweg 4", "Schillerplatz 9, 70173 Stuttgart",
                "12 rue de la Paix, 75002 Paris", "8 avenue Victor Hugo", "Calle Mayor 15",
                "Via Roma 27", "Rua Augusta 140"]
CONDITIONS = ["type 2 diabetes", "asthma", "hypertension", "depression", "bipolar disorder",
              "epilepsy", "HIV", "breast cancer", "multiple sclerosis", "Crohn's disease",
              "schizophrenia", "PTSD", "COPD", "rheumatoid arthritis", "hepatitis C",
              "sleep apnea", "celiac disease", "an eating disorder", "ADHD", "lupus",
              "chronic kidney disease", "Parkinson's disease", "psoriasis", "endometriosis",
              "atrial fibrillation", "glaucoma", "long COVID", "migraines", "anxiety disorder",
              "osteoporosis"]
MEDS = ["metformin", "insulin", "lisinopril", "sertraline", "Adderall", "lithium", "Humira",
        "Ozempic", "atorvastatin", "levothyroxine", "prednisone", "Xanax", "methadone",
        "Suboxone", "gabapentin", "warfarin", "albuterol", "fluoxetine", "Truvada", "oxycodone"]
ICD = ["E11.9", "F32.1", "J45.909", "I10", "C50.911", "F41.1", "G40.909", "K50.90", "M06.9"]
BIO = ["fingerprint scan", "facial recognition", "retina scan", "voiceprint", "iris scan",
       "face geometry", "palm print", "fingerprint template", "voice print", "facial scan",
       "biometric template", "hand geometry"]
MINOR_PHRASES = ["{n}-year-old", "{n} year old", "aged {n}"]
MINOR_WORDS = ["my son", "my daughter", "toddler", "kindergartner", "third grader",
               "middle school", "infant", "newborn", "minor", "preteen", "teenager",
               "elementary school", "fifth grader", "grandson", "granddaughter"]


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(R.randint(0, 9))
    for check in range(10):
        cand = digits + [check]
        s = 0
        for i, d in enumerate(reversed(cand)):
            if i % 2 == 1:
                d *= 2
                if d > 9:
                    d -= 9
            s += d
        if s % 10 == 0:
            return "".join(map(str, cand))
    raise AssertionError


def card():
    kind = R.choice(["visa", "mc", "amex", "disc", "mc2"])
    if kind == "visa":
        n = luhn_complete("4" + str(R.randint(10000, 99999)), 16)
    elif kind == "mc":
        n = luhn_complete(str(R.randint(51, 55)), 16)
    elif kind == "mc2":
        n = luhn_complete(str(R.randint(2221, 2720)), 16)
    elif kind == "amex":
        n = luhn_complete(R.choice(["34", "37"]), 15)
    else:
        n = luhn_complete("6011", 16)
    style = R.random()
    if len(n) == 15:
        return f"{n[:4]} {n[4:10]} {n[10:]}" if style < 0.6 else n
    if style < 0.45:
        return " ".join(n[i:i + 4] for i in range(0, 16, 4))
    if style < 0.7:
        return "-".join(n[i:i + 4] for i in range(0, 16, 4))
    return n


def ssn():
    while True:
        area = R.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"


def nanp():
    area = R.choice([212, 312, 415, 617, 202, 303, 503, 206, 512, 404, 305, 702, 615, 919, 720])
    ex = R.randint(200, 999)
    while ex % 100 == 11:
        ex = R.randint(200, 999)
    line = R.randint(0, 9999)
    style = R.random()
    if style < 0.35:
        return f"({area}) {ex}-{line:04d}"
    if style < 0.65:
        return f"{area}-{ex}-{line:04d}"
    if style < 0.8:
        return f"{area}.{ex}.{line:04d}"
    if style < 0.9:
        return f"+1 {area} {ex} {line:04d}"
    return f"+1-{area}-{ex}-{line:04d}"


def intl_phone():
    return R.choice([
        lambda: f"+44 20 {R.randint(7000, 8999)} {R.randint(1000, 9999)}",
        lambda: f"+44 7{R.randint(100, 999)} {R.randint(100000, 999999)}",
        lambda: f"07{R.randint(100, 999)} {R.randint(100000, 999999)}",
        lambda: f"+49 30 {R.randint(1000000, 99999999)}",
        lambda: f"+33 1 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
        lambda: f"+91 {R.randint(70000, 99999)} {R.randint(10000, 99999)}",
        lambda: f"+61 4{R.randint(10, 99)} {R.randint(100, 999)} {R.randint(100, 999)}",
        lambda: f"+81 3 {R.randint(1000, 9999)} {R.randint(1000, 9999)}",
    ])()


def phone():
    return nanp() if R.random() < 0.65 else intl_phone()


def iban():
    country, length = R.choice([("GB", 22), ("DE", 22), ("FR", 27), ("NL", 18), ("ES", 24), ("IT", 27), ("BE", 16)])
    if country == "GB":
        bban = "".join(R.choice(string.ascii_uppercase) for _ in range(4)) + "".join(R.choice(string.digits) for _ in range(14))
    elif country == "NL":
        bban = "".join(R.choice(string.ascii_uppercase) for _ in range(4)) + "".join(R.choice(string.digits) for _ in range(10))
    elif country == "IT":
        bban = R.choice(string.ascii_uppercase) + "".join(R.choice(string.digits) for _ in range(22))
    else:
        bban = "".join(R.choice(string.digits) for _ in range(length - 4))
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(num) % 97
    raw = f"{country}{check:02d}{bban}"
    if R.random() < 0.5:
        return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))
    return raw


def aadhaar():
    d = [[0,1,2,3,4,5,6,7,8,9],[1,2,3,4,0,6,7,8,9,5],[2,3,4,0,1,7,8,9,5,6],[3,4,0,1,2,8,9,5,6,7],[4,0,1,2,3,9,5,6,7,8],[5,9,8,7,6,0,4,3,2,1],[6,5,9,8,7,1,0,4,3,2],[7,6,5,9,8,2,1,0,4,3],[8,7,6,5,9,3,2,1,0,4],[9,8,7,6,5,4,3,2,1,0]]
    p = [[0,1,2,3,4,5,6,7,8,9],[1,5,7,6,2,8,3,0,9,4],[5,8,0,3,7,9,6,1,4,2],[8,9,1,6,0,4,3,5,2,7],[9,4,5,3,1,2,6,8,7,0],[4,2,8,6,5,7,3,9,0,1],[2,7,9,3,8,0,6,4,1,5],[7,0,4,6,9,1,3,2,5,8]]
    inv = [0,4,3,2,1,5,6,7,8,9]
    body = [R.randint(2, 9)] + [R.randint(0, 9) for _ in range(10)]
    c = 0
    for i, n in enumerate(reversed(body)):
        c = d[c][p[(i + 1) % 8][n]]
    s = "".join(map(str, body + [inv[c]]))
    return f"{s[:4]} {s[4:8]} {s[8:]}"


def nino():
    first = R.choice("ABCEGHJKLMNPRSTWXYZ")
    second = R.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        first, second = "A", "B"
    digits = "".join(R.choice(string.digits) for _ in range(6))
    if R.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {R.choice('ABCD')}"
    return f"{first}{second}{digits}{R.choice('ABCD')}"


def passport():
    return R.choice([lambda: "".join(R.choice(string.digits) for _ in range(9)),
                     lambda: R.choice(string.ascii_uppercase) + "".join(R.choice(string.digits) for _ in range(8))])()


def driver():
    return R.choice(string.ascii_uppercase) + "".join(R.choice(string.digits) for _ in range(R.choice([7, 8, 12])))


def ipv4():
    return R.choice([
        lambda: f"{R.randint(11, 223)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
        lambda: f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}",
        lambda: f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
    ])()


def ipv6():
    groups = [f"{R.randint(0, 65535):x}" for _ in range(8)]
    if R.random() < 0.5:
        return "2001:db8::" + ":".join(groups[5:])
    return ":".join(groups)


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def date():
    y, m, d = R.randint(1940, 2015), R.randint(1, 12), R.randint(1, 28)
    return R.choice([f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d} {MONTHS[m - 1]} {y}",
                     f"{MONTHS[m - 1]} {d}, {y}", f"{d:02d}.{m:02d}.{y}"])


def b64url(n):
    return "".join(R.choice(string.ascii_letters + string.digits + "-_") for _ in range(n))


def credential():
    return R.choice([
        lambda: "AKIA" + "".join(R.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        lambda: "ghp_" + "".join(R.choice(string.ascii_letters + string.digits) for _ in range(36)),
        lambda: "sk_live_" + "".join(R.choice(string.ascii_letters + string.digits) for _ in range(24)),
        lambda: "sk-proj-" + b64url(48),
        lambda: "xoxb-" + "-".join(str(R.randint(10**11, 10**12)) for _ in range(2)) + "-" + "".join(R.choice(string.ascii_letters) for _ in range(24)),
        lambda: "AIza" + b64url(35),
        lambda: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJ" + b64url(40) + "." + b64url(43),
        lambda: "glpat-" + b64url(20),
    ])()


def password():
    return "".join(R.choice(string.ascii_letters + string.digits + "!#%&*") for _ in range(R.randint(8, 16)))


def person():
    f, l = R.choice(FIRST), R.choice(LAST)
    return R.choice([f"{f} {l}", f"{f} {l}", f"{f} {R.choice(string.ascii_uppercase)}. {l}", f"{f}"])


class S:
    """A sentence being built: text with labelled spans."""

    def __init__(self):
        self.parts = []
        self.spans = []
        self.len = 0

    def t(self, text):
        self.parts.append(text)
        self.len += len(text)
        return self

    def v(self, cls, value):
        self.spans.append({"class": cls, "start": self.len, "end": self.len + len(value)})
        return self.t(value)

    def build(self, source):
        return {"text": "".join(self.parts), "spans": self.spans, "source": source}


def positives():
    P = lambda: R.choice(FIRST) + " " + R.choice(LAST)
    t = []
    for _ in range(230):
        t.append(R.choice([
            lambda: S().t("Please forward the contract to ").v("PERSON", P()).t(" by Friday.").build("person-1"),
            lambda: S().t("Hi ").v("PERSON", R.choice(FIRST)).t(", thanks for the quick reply!").build("person-2"),
            lambda: S().t(R.choice(TITLES) + " ").v("PERSON", R.choice(LAST)).t(" will review the results tomorrow.").build("person-3"),
            lambda: S().t("Meeting notes: ").v("PERSON", P()).t(" and ").v("PERSON", P()).t(" agreed to ship on Monday.").build("person-4"),
            lambda: S().t("The ticket was assigned to ").v("PERSON", person()).t(" yesterday.").build("person-5"),
            lambda: S().t("Customer name: ").v("PERSON", P()).build("person-6"),
            lambda: S().t("I spoke with ").v("PERSON", P()).t(" from billing and she confirmed the refund.").build("person-7"),
            lambda: S().v("PERSON", P()).t(" said the deployment looked fine.").build("person-8"),
            lambda: S().t('{"customer": {"name": "').v("PERSON", P()).t('", "tier": "gold"}}').build("person-9"),
            lambda: S().t("Regards,\n").v("PERSON", P()).build("person-10"),
        ])())
    for _ in range(200):
        e = lambda: f"{R.choice(FIRST).lower()}.{R.choice(LAST).lower().replace(chr(39), '')}{R.choice(['', '', str(R.randint(1, 99))])}@{R.choice(DOMAINS)}"
        t.append(R.choice([
            lambda: S().t("You can reach me at ").v("EMAIL", e()).t(" any time.").build("email-1"),
            lambda: S().t("From: ").v("EMAIL", e()).t("\nSubject: invoice").build("email-2"),
            lambda: S().t('{"email":"').v("EMAIL", e()).t('","verified":true}').build("email-3"),
            lambda: S().t("cc ").v("EMAIL", e()).t(" on the reply please").build("email-4"),
        ])())
    for _ in range(200):
        t.append(R.choice([
            lambda: S().t("Call me on ").v("PHONE", phone()).t(" after 5pm.").build("phone-1"),
            lambda: S().t("Phone: ").v("PHONE", phone()).build("phone-2"),
            lambda: S().t("The clinic's number is ").v("PHONE", phone()).t(".").build("phone-3"),
            lambda: S().t("text ").v("PHONE", phone()).t(" if the courier is late").build("phone-4"),
            lambda: S().t('{"contact_phone": "').v("PHONE", phone()).t('"}').build("phone-5"),
        ])())
    for _ in range(180):
        def us():
            num = R.randint(1, 9999)
            street = f"{num} {R.choice(['', '', 'N ', 'W ', 'S '])}{R.choice(STREETS)} {R.choice(STYPES)}"
            r = R.random()
            if r < 0.4:
                return street
            c, s, z = R.choice(CITIES)
            unit = R.choice(["", "", ", Apt 4B", ", Suite 210", ", Unit 7"])
            return f"{street}{unit}, {c}, {s} {z}"
        addr = lambda: R.choice([us, us, us, lambda: R.choice(UK_ADDR), lambda: R.choice(FOREIGN_ADDR)])()
        t.append(R.choice([
            lambda: S().t("Ship it to ").v("ADDRESS", addr()).t(" please.").build("address-1"),
            lambda: S().t("Our new office is at ").v("ADDRESS", addr()).t(".").build("address-2"),
            lambda: S().t("Billing address: ").v("ADDRESS", addr()).build("address-3"),
            lambda: S().t("She moved to ").v("ADDRESS", addr()).t(" last spring.").build("address-4"),
        ])())
    for _ in range(200):
        t.append(R.choice([
            lambda: S().t("My SSN is ").v("GOV_ID", ssn()).t(".").build("gov-1"),
            lambda: S().t("SSN: ").v("GOV_ID", ssn()).build("gov-2"),
            lambda: S().t("Passport number ").v("GOV_ID", passport()).t(", expires 2031.").build("gov-3"),
            lambda: S().t("Driver's license: ").v("GOV_ID", driver()).build("gov-4"),
            lambda: S().t("National Insurance number ").v("GOV_ID", nino()).t(" on file.").build("gov-5"),
            lambda: S().t("Aadhaar ").v("GOV_ID", aadhaar()).t(" verified").build("gov-6"),
            lambda: S().t("applicant ssn ").v("GOV_ID", ssn()).t(" does not match the record").build("gov-7"),
        ])())
    for _ in range(200):
        t.append(R.choice([
            lambda: S().t("Charge it to my card ").v("PAYMENT_CARD", card()).t(" please.").build("card-1"),
            lambda: S().t("card_number=").v("PAYMENT_CARD", card()).t("&exp=0927").build("card-2"),
            lambda: S().t("Visa ending... actually the full number is ").v("PAYMENT_CARD", card()).build("card-3"),
            lambda: S().t("I paid with ").v("PAYMENT_CARD", card()).t(" but was charged twice.").build("card-4"),
        ])())
    for _ in range(180):
        acct = lambda: "".join(R.choice(string.digits) for _ in range(R.randint(8, 12)))
        t.append(R.choice([
            lambda: S().t("Please wire the deposit to IBAN ").v("BANK_ACCOUNT", iban()).t(".").build("bank-1"),
            lambda: S().t("IBAN: ").v("BANK_ACCOUNT", iban()).build("bank-2"),
            lambda: S().t("My account number is ").v("BANK_ACCOUNT", acct()).t(" at the credit union.").build("bank-3"),
            lambda: S().t("acct ").v("BANK_ACCOUNT", acct()).t(" routing ").v("BANK_ACCOUNT", "021000021").build("bank-4"),
        ])())
    for _ in range(180):
        t.append(R.choice([
            lambda: S().t("Failed login from ").v("IP_ADDRESS", ipv4()).t(" at 03:12.").build("ip-1"),
            lambda: S().t("client_ip=").v("IP_ADDRESS", ipv4()).t(" status=403").build("ip-2"),
            lambda: S().t("The VPN assigned ").v("IP_ADDRESS", ipv6()).t(" to my laptop.").build("ip-3"),
            lambda: S().t("my home IP is ").v("IP_ADDRESS", ipv4()).build("ip-4"),
        ])())
    for _ in range(180):
        t.append(R.choice([
            lambda: S().t("He was born on ").v("DATE_OF_BIRTH", date()).t(" in Ohio.").build("dob-1"),
            lambda: S().t("DOB: ").v("DATE_OF_BIRTH", date()).build("dob-2"),
            lambda: S().t("Date of birth ").v("DATE_OF_BIRTH", date()).t(", verified by the clerk.").build("dob-3"),
            lambda: S().t("my birthday is ").v("DATE_OF_BIRTH", date()).t(" so book the week after").build("dob-4"),
        ])())
    for _ in range(200):
        t.append(R.choice([
            lambda: S().t("The patient was diagnosed with ").v("HEALTH", R.choice(CONDITIONS)).t(" last year.").build("health-1"),
            lambda: S().t("She takes ").v("HEALTH", R.choice(MEDS)).t(" twice a day.").build("health-2"),
            lambda: S().t("Diagnosis code ").v("HEALTH", R.choice(ICD)).t(" was billed.").build("health-3"),
            lambda: S().t("I've been managing my ").v("HEALTH", R.choice(CONDITIONS)).t(" with diet.").build("health-4"),
            lambda: S().t("Refill request: ").v("HEALTH", R.choice(MEDS)).t(" 20mg").build("health-5"),
        ])())
    for _ in range(160):
        t.append(R.choice([
            lambda: S().t("The door requires a ").v("BIOMETRIC", R.choice(BIO)).t(" to enter.").build("bio-1"),
            lambda: S().t("We store each employee's ").v("BIOMETRIC", R.choice(BIO)).t(" for payroll.").build("bio-2"),
            lambda: S().t("Enrollment failed: ").v("BIOMETRIC", R.choice(BIO)).t(" did not match.").build("bio-3"),
        ])())
    for _ in range(200):
        t.append(R.choice([
            lambda: S().t("export AWS_ACCESS_KEY_ID=").v("CREDENTIAL", "AKIA" + "".join(R.choice(string.ascii_uppercase + string.digits) for _ in range(16))).build("cred-1"),
            lambda: S().t("use token ").v("CREDENTIAL", credential()).t(" for the API").build("cred-2"),
            lambda: S().t("password: ").v("CREDENTIAL", password()).build("cred-3"),
            lambda: S().t("my password is ").v("CREDENTIAL", password()).t(" don't share it").build("cred-4"),
            lambda: S().t("DATABASE_URL=").v("CREDENTIAL", f"postgres://app:{password().replace('#', 'x')}@db{R.randint(1, 9)}.internal:5432/prod").build("cred-5"),
            lambda: S().t("Authorization: Bearer ").v("CREDENTIAL", credential()).build("cred-6"),
            lambda: S().t('{"api_key": "').v("CREDENTIAL", credential()).t('"}').build("cred-7"),
        ])())
    for _ in range(180):
        def m():
            return R.choice(MINOR_PHRASES).format(n=R.randint(2, 16))
        t.append(R.choice([
            lambda: S().t("My ").v("MINOR", m()).t(" needs a passport.").build("minor-1"),
            lambda: S().t("The app was used by a ").v("MINOR", m()).t(" without consent.").build("minor-2"),
            lambda: S().t("Pickup for ").v("MINOR", R.choice(MINOR_WORDS)).t(" is at 3pm.").build("minor-3"),
            lambda: S().t("Photos of ").v("MINOR", R.choice(MINOR_WORDS)).t(" must not be uploaded.").build("minor-4"),
        ])())
    # Sentences that mix several classes, the way real messages do.
    for _ in range(300):
        t.append(R.choice([
            lambda: S().t("Patient ").v("PERSON", P()).t(", DOB ").v("DATE_OF_BIRTH", date()).t(", takes ").v("HEALTH", R.choice(MEDS)).t(" for ").v("HEALTH", R.choice(CONDITIONS)).t(".").build("mix-1"),
            lambda: S().t("Contact ").v("PERSON", P()).t(" at ").v("EMAIL", f"{R.choice(FIRST).lower()}@{R.choice(DOMAINS)}").t(" or ").v("PHONE", nanp()).t(".").build("mix-2"),
            lambda: S().t("Refund ").v("PAYMENT_CARD", card()).t(" for ").v("PERSON", P()).t(", ").v("ADDRESS", f"{R.randint(1, 999)} {R.choice(STREETS)} {R.choice(STYPES)}").t(".").build("mix-3"),
            lambda: S().t("login ok user=").v("EMAIL", f"{R.choice(FIRST).lower()}{R.randint(1, 99)}@{R.choice(DOMAINS)}").t(" ip=").v("IP_ADDRESS", ipv4()).build("mix-4"),
            lambda: S().t("My ").v("MINOR", f"{R.randint(5, 15)}-year-old").t(" has ").v("HEALTH", R.choice(CONDITIONS)).t("; call me at ").v("PHONE", phone()).build("mix-5"),
        ])())
    return t


def negatives():
    """Hard negatives: text full of numbers, capitals and code that holds no personal data."""
    words = ["Order", "Invoice", "Ticket", "Build", "Release", "Job", "Shipment", "Case"]
    t = []
    gens = [
        lambda: f"Order #{R.randint(100000, 999999)} shipped on {R.randint(1, 28)} {R.choice(MONTHS)} {R.randint(2019, 2026)}.",
        lambda: f"{R.choice(words)} {R.choice(['INV', 'ORD', 'TCK', 'BLD'])}-{R.randint(2019, 2026)}-{R.randint(1, 99999):05d} is {R.choice(['paid', 'open', 'closed', 'pending'])}.",
        lambda: f"2026-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}Z INFO worker={R.randint(1, 16)} processed {R.randint(1, 50000)} items in {R.randint(1, 9999)} ms",
        lambda: f"ERROR [{R.choice(['db', 'http', 'queue', 'cache'])}] connection reset after {R.randint(1, 120)}s (attempt {R.randint(1, 9)}/10)",
        lambda: f"Upgrade to version {R.randint(1, 9)}.{R.randint(0, 30)}.{R.randint(0, 99)} and restart the service on port {R.randint(1024, 65535)}.",
        lambda: f"sha256: {''.join(R.choice('0123456789abcdef') for _ in range(64))}",
        lambda: f"request_id={''.join(R.choice('0123456789abcdef') for _ in range(8))}-{''.join(R.choice('0123456789abcdef') for _ in range(4))}-4{''.join(R.choice('0123456789abcdef') for _ in range(3))}-a{''.join(R.choice('0123456789abcdef') for _ in range(3))}-{''.join(R.choice('0123456789abcdef') for _ in range(12))} latency_ms={R.randint(1, 900)}",
        lambda: f"Total: ${R.randint(1, 9999)}.{R.randint(0, 99):02d} for {R.randint(1, 20)} units (SKU {R.randint(10000000, 99999999)}).",
        lambda: f"for i in range({R.randint(1, 1000)}):\n    total += values[i] * {R.randint(2, 99)}",
        lambda: f"let buffer = vec![0u8; {R.randint(1, 65536)}]; // child process output",
        lambda: f"The {R.choice(['Quarterly', 'Annual', 'Monthly'])} {R.choice(['Revenue', 'Planning', 'Security'])} Review is scheduled for {R.choice(MONTHS)} {R.randint(1, 28)}.",
        lambda: f"{R.choice(['Apple', 'Microsoft', 'Google', 'Amazon', 'Oracle', 'Stripe'])} announced {R.choice(['a new', 'the next'])} {R.choice(['Cloud', 'Data', 'Search', 'Payments'])} platform in {R.choice(['Paris', 'Berlin', 'Tokyo', 'Austin', 'Dublin'])}.",
        lambda: f"Flight {R.choice(['BA', 'LH', 'UA', 'AF'])}{R.randint(100, 9999)} departs from gate {R.choice('ABCDE')}{R.randint(1, 60)} at {R.randint(0, 23):02d}:{R.randint(0, 59):02d}.",
        lambda: f"The minor version bump fixed {R.randint(2, 40)} bugs and a child process leak.",
        lambda: f"Set stroke width to {R.randint(1, 8)}px and lithium battery threshold to {R.randint(10, 90)}%.",
        lambda: f"Read chapter {R.randint(1, 30)}, pages {R.randint(1, 200)}-{R.randint(201, 400)}, before the seminar on {R.choice(['Tuesday', 'Thursday'])}.",
        lambda: f"Temperature {R.randint(-20, 40)}°C, humidity {R.randint(10, 99)}%, wind {R.randint(0, 60)} km/h, pressure {R.randint(980, 1040)} hPa.",
        lambda: f"The password must be at least {R.randint(8, 16)} characters long.",
        lambda: f"Your password is incorrect; {R.randint(1, 4)} attempts remain.",
        lambda: f"Use the token endpoint with grant_type=client_credentials and scope=read:{R.choice(['users', 'orders', 'logs'])}.",
        lambda: f"api_key: ${{{R.choice(['API_KEY', 'OPENAI_API_KEY', 'SERVICE_TOKEN'])}}}",
        lambda: f"Kubernetes pod {R.choice(['web', 'api', 'worker'])}-{''.join(R.choice('abcdef0123456789') for _ in range(10))}-{''.join(R.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(5))} restarted {R.randint(1, 50)} times.",
        lambda: f"Tracking number 1Z{''.join(R.choice(string.ascii_uppercase + string.digits) for _ in range(16))} is in transit.",
        lambda: f"Call the function at line {R.randint(1, 5000)} of main.rs with {R.randint(1, 64)} threads.",
        lambda: f"The {R.choice(['Lincoln', 'Washington', 'Jefferson', 'Madison'])} Memorial {R.choice(['opens', 'closes'])} at {R.randint(6, 10)} am.",
        lambda: f"Matrix A is {R.randint(2, 9)}x{R.randint(2, 9)}; det(A) = {R.randint(-999, 999)}.",
        lambda: f"Version {R.randint(1, 3)}.{R.randint(0, 9)} of the Payment Card Industry standard applies to {R.randint(2, 12)} services.",
        lambda: f"Coupon code SAVE{R.randint(10, 50)} expires on {R.randint(1, 12)}/{R.randint(1, 28)}.",
        lambda: f"Heading: {R.choice(['Getting Started', 'Release Notes', 'Known Issues', 'Security Advisory'])} for {R.choice(['Windows', 'Linux', 'macOS'])} users",
        lambda: f"GET /api/v{R.randint(1, 3)}/orders/{R.randint(1000, 99999)}?page={R.randint(1, 50)} HTTP/1.1 200 {R.randint(100, 99999)}",
    ]
    for _ in range(1500):
        t.append({"text": R.choice(gens)(), "spans": [], "source": "negative"})
    return t


def main():
    rows = positives() + negatives()
    R.shuffle(rows)
    for i, row in enumerate(rows):
        row["split"] = "calibration" if i % 2 == 0 else "evaluation"
        for s in row["spans"]:
            assert row["text"][s["start"]:s["end"]], row
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

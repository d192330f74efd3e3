"""Recall on values the Rampart authors did not write: Faker-generated names, addresses, phone
numbers, SSNs, cards, IBANs and IPs in short templates, scanned by `rampart sentinel scan`.

    python3 -m venv /tmp/fk && /tmp/fk/bin/pip install faker
    /tmp/fk/bin/python crates/rampart-sentinel/corpus/faker_check.py target/release/rampart

Faker is only the source of test values; nothing of it is used by the detector.
"""

import collections
import json
import random
import subprocess
import sys

from faker import Faker

TEMPLATES = {
    "PERSON": ["Please forward the contract to {} before Friday.", "{} joined the call late.",
               "Meeting notes taken by {}.", "The ticket was reassigned from {} yesterday.",
               "Thanks, {}", "Customer {} asked for a refund."],
    "EMAIL": ["Reply to {} when ready.", "contact: {}"],
    "PHONE": ["Call me at {} tomorrow.", "phone: {}"],
    "ADDRESS": ["Ship it to {} please.", "Her address is {}."],
    "GOV_ID": ["SSN {} on file.", "My social security number is {}."],
    "PAYMENT_CARD": ["Charge card {} for the order.", "cc: {}"],
    "BANK_ACCOUNT": ["Wire to IBAN {} today.", "Account IBAN: {}"],
    "IP_ADDRESS": ["Login from {} was blocked.", "client ip {}"],
}


def main() -> None:
    rampart = sys.argv[1] if len(sys.argv) > 1 else "rampart"
    fake = Faker(["en_US", "en_GB"])
    Faker.seed(7)
    random.seed(7)
    us = fake["en_US"]
    values = {
        "PERSON": fake.name,
        "EMAIL": fake.email,
        "PHONE": us.phone_number,
        "ADDRESS": lambda: us.address().replace("\n", ", "),
        "GOV_ID": us.ssn,
        "PAYMENT_CARD": fake.credit_card_number,
        "BANK_ACCOUNT": fake.iban,
        "IP_ADDRESS": lambda: random.choice([fake.ipv4_public(), fake.ipv6()]),
    }
    cases = []
    for cls, templates in TEMPLATES.items():
        for _ in range(150):
            template = random.choice(templates)
            value = values[cls]()
            start = template.index("{}")
            cases.append((cls, template.replace("{}", value, 1), start, start + len(value)))
    lines = "".join(json.dumps({"text": t}) + "\n" for _, t, _, _ in cases)
    out = subprocess.run([rampart, "sentinel", "scan"], input=lines, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    hits, totals, spurious = collections.Counter(), collections.Counter(), collections.Counter()
    for (cls, text, s, e), line in zip(cases, out):
        totals[cls] += 1
        spans = json.loads(line)["spans"]
        right = [x for x in spans if x["class"] == cls and x["start"] < e and x["end"] > s]
        hits[cls] += bool(right)
        for x in spans:
            if x not in right:
                spurious[x["class"]] += 1
    for cls in TEMPLATES:
        print(f"{cls:14} recall {hits[cls] / totals[cls]:.3f} ({hits[cls]}/{totals[cls]})")
    print("spurious spans:", dict(spurious) or "none")


if __name__ == "__main__":
    main()

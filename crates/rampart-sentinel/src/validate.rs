//! Checksums and numbering rules that turn a pattern match into a validated value. Each takes the
//! candidate's digits (or characters) with separators already removed.

/// The Luhn (mod 10) check used by payment cards and Canadian SINs.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// A payment card number: 13–19 digits, an issuer prefix that exists, and the Luhn check.
pub fn payment_card(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(12..=19).contains(&n) || !luhn(digits) {
        return false;
    }
    let prefix = |k: usize| -> u32 {
        digits[..k]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    let p6 = prefix(6);
    match digits[0] {
        b'4' => matches!(n, 13 | 16 | 19), // Visa
        b'5' => {
            (51..=55).contains(&p2) && n == 16 // Mastercard
            || matches!(p4, 5018 | 5020 | 5038 | 5893) && (12..=19).contains(&n)
        } // Maestro
        b'2' => {
            (2221..=2720).contains(&p4) && n == 16 // Mastercard 2-series
            || p4 == 2131 && n == 15
        } // JCB (15 digits)
        b'1' => p4 == 1800 && n == 15,     // JCB (15 digits)
        b'3' => {
            (matches!(p2, 34 | 37) && n == 15)                               // Amex
                || ((300..=305).contains(&p3) || p2 == 36 || p2 == 38) && (14..=19).contains(&n) // Diners
                || (3528..=3589).contains(&p4) && (16..=19).contains(&n) // JCB
        }
        b'6' => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622_126..=622_925).contains(&p6))
                && (16..=19).contains(&n)                                    // Discover
                || p2 == 62 && (16..=19).contains(&n)                        // UnionPay
                || matches!(p4, 6304 | 6759 | 6761 | 6762 | 6763) && (12..=19).contains(&n) // Maestro
        }
        _ => false,
    }
}

/// A US Social Security number: area not 000, 666 or 900–999, group not 00, serial not 0000.
pub fn ssn(digits: &[u8]) -> bool {
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = &digits[0..3];
    let group = &digits[3..5];
    let serial = &digits[5..9];
    area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000"
        // Numbers that were published in advertising and never identify anyone.
        && digits != b"078051120" && digits != b"219099999" && digits != b"123456789"
}

/// A North American Numbering Plan number (10 digits, without the country code): area code and
/// exchange start with 2–9 and neither is an N11 service code.
pub fn nanp(digits: &[u8]) -> bool {
    if digits.len() != 10 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n11 = |d: &[u8]| d[1] == b'1' && d[2] == b'1';
    digits[0] >= b'2'
        && digits[3] >= b'2'
        && !n11(&digits[0..3])
        && !n11(&digits[3..6])
        && !(digits[0] == digits[1]
            && digits[1] == digits[2]
            && digits[2] == digits[3]
            && digits[3] == digits[4]
            && digits[4] == digits[5])
}

/// An international number after `+`: a country code from the numbering plans we know and a
/// national significant number of a length that plan allows.
pub fn e164(digits: &[u8]) -> bool {
    if !(8..=15).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    // (country code, shortest and longest national number)
    const PLANS: &[(&[u8], usize, usize)] = &[
        (b"1", 10, 10),
        (b"7", 10, 10),
        (b"20", 9, 10),
        (b"27", 9, 9),
        (b"30", 10, 10),
        (b"31", 9, 9),
        (b"32", 8, 9),
        (b"33", 9, 9),
        (b"34", 9, 9),
        (b"36", 8, 9),
        (b"39", 6, 11),
        (b"40", 9, 9),
        (b"41", 9, 9),
        (b"43", 4, 13),
        (b"44", 9, 10),
        (b"45", 8, 8),
        (b"46", 7, 9),
        (b"47", 8, 8),
        (b"48", 9, 9),
        (b"49", 6, 13),
        (b"51", 8, 9),
        (b"52", 10, 10),
        (b"54", 10, 11),
        (b"55", 10, 11),
        (b"56", 9, 9),
        (b"57", 10, 10),
        (b"60", 7, 10),
        (b"61", 9, 9),
        (b"62", 8, 12),
        (b"63", 8, 10),
        (b"64", 8, 10),
        (b"65", 8, 8),
        (b"66", 8, 9),
        (b"81", 9, 10),
        (b"82", 8, 10),
        (b"84", 9, 10),
        (b"86", 10, 11),
        (b"90", 10, 10),
        (b"91", 10, 10),
        (b"92", 9, 10),
        (b"234", 8, 10),
        (b"254", 9, 9),
        (b"351", 9, 9),
        (b"353", 7, 9),
        (b"358", 5, 12),
        (b"380", 9, 9),
        (b"420", 9, 9),
        (b"966", 9, 9),
        (b"971", 8, 9),
        (b"972", 8, 9),
    ];
    PLANS.iter().any(|(cc, min, max)| {
        digits.starts_with(cc)
            && (*min..=*max).contains(&(digits.len() - cc.len()))
            && (cc != b"1" || nanp(&digits[1..]))
    })
}

/// A UK number written nationally: 0 then 9 or 10 digits, in a range Ofcom allocates to
/// geographic (01, 02), mobile (07) or non-geographic (03, 08) use.
pub fn uk_national(digits: &[u8]) -> bool {
    matches!(digits.len(), 10 | 11)
        && digits[0] == b'0'
        && matches!(digits[1], b'1' | b'2' | b'3' | b'7' | b'8')
        && digits.iter().all(u8::is_ascii_digit)
}

/// The IBAN length of each country that issues them (SWIFT IBAN registry).
fn iban_length(country: &[u8]) -> Option<usize> {
    const LENGTHS: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == country)
        .map(|(_, n)| *n)
}

/// An IBAN (spaces removed, upper case): a registered country, that country's length, and the
/// ISO 7064 mod-97 check.
pub fn iban(chars: &[u8]) -> bool {
    if chars.len() < 15 || iban_length(&chars[..2]) != Some(chars.len()) {
        return false;
    }
    if !chars[2].is_ascii_digit() || !chars[3].is_ascii_digit() {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        match c {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// An ABA routing transit number: nine digits with the 3-7-1 weighted checksum.
pub fn aba_routing(digits: &[u8]) -> bool {
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let w = [3u32, 7, 1];
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| w[i % 3] * u32::from(d - b'0'))
        .sum();
    sum.is_multiple_of(10) && digits != b"000000000"
}

/// The Verhoeff check used by India's Aadhaar numbers (12 digits, not starting 0 or 1).
pub fn aadhaar(digits: &[u8]) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    if digits.len() != 12 || !digits.iter().all(u8::is_ascii_digit) || digits[0] < b'2' {
        return false;
    }
    let mut c = 0u8;
    for (i, d) in digits.iter().rev().enumerate() {
        c = D[usize::from(c)][usize::from(P[i % 8][usize::from(d - b'0')])];
    }
    c == 0
}

/// A UK NHS number: ten digits with the mod-11 check digit.
pub fn nhs(digits: &[u8]) -> bool {
    if digits.len() != 10 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits[..9]
        .iter()
        .enumerate()
        .map(|(i, d)| (10 - i as u32) * u32::from(d - b'0'))
        .sum();
    let check = (11 - sum % 11) % 11;
    check != 10 && check == u32::from(digits[9] - b'0')
}

/// A UK National Insurance number (upper case, no spaces): two prefix letters from the allowed
/// sets and not an unused pair, six digits, suffix A–D.
pub fn uk_nino(chars: &[u8]) -> bool {
    if chars.len() != 9 {
        return false;
    }
    let (a, b) = (chars[0], chars[1]);
    let first_ok = a.is_ascii_uppercase() && !b"DFIQUV".contains(&a);
    let second_ok = b.is_ascii_uppercase() && !b"DFIQUVO".contains(&b);
    let pair = &chars[..2];
    let unused = [b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"]
        .iter()
        .any(|p| p.as_slice() == pair);
    first_ok
        && second_ok
        && !unused
        && chars[2..8].iter().all(u8::is_ascii_digit)
        && matches!(chars[8], b'A'..=b'D')
}

/// A Spanish DNI: eight digits and the mod-23 control letter.
pub fn spanish_dni(chars: &[u8]) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    if chars.len() != 9 || !chars[..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n: u32 = chars[..8]
        .iter()
        .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
    LETTERS[(n % 23) as usize] == chars[8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_cards_known_answers() {
        // Test numbers that the card networks publish for integration testing.
        for card in [
            "4111111111111111",
            "4242424242424242",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3566002020360505",
            "30569309025904",
            "6200000000000005",
        ] {
            assert!(payment_card(card.as_bytes()), "{card}");
        }
        assert!(!payment_card(b"4111111111111112"));
        assert!(
            !payment_card(b"1234567812345670"),
            "Luhn-valid but no issuer"
        );
        assert!(!payment_card(b"0000000000000000"));
        assert!(luhn(b"046454286"), "a Canadian SIN example");
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn(b"536221234"));
        assert!(!ssn(b"000221234"));
        assert!(!ssn(b"666221234"));
        assert!(!ssn(b"936221234"));
        assert!(!ssn(b"536001234"));
        assert!(!ssn(b"536220000"));
        assert!(!ssn(b"078051120"));
    }

    #[test]
    fn phone_plans() {
        assert!(nanp(b"2125551234"));
        assert!(!nanp(b"1125551234"), "area codes do not start with 1");
        assert!(!nanp(b"2121551234"), "exchanges do not start with 1");
        assert!(!nanp(b"4115551234"), "411 is a service code");
        assert!(e164(b"442079460958"));
        assert!(e164(b"4915123456789"));
        assert!(e164(b"12125551234"));
        assert!(!e164(b"11125551234"));
        assert!(!e164(b"99912345678"));
        assert!(uk_national(b"02079460958"));
        assert!(uk_national(b"07700900123"));
        assert!(!uk_national(b"05079460958"));
    }

    #[test]
    fn iban_known_answers() {
        for iban_ in [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
            "NO9386011117947",
        ] {
            assert!(iban(iban_.as_bytes()), "{iban_}");
        }
        assert!(!iban(b"GB82WEST12345698765433"));
        assert!(!iban(b"GB82WEST1234569876543"), "wrong length for GB");
        assert!(!iban(b"XX82WEST12345698765432"));
    }

    #[test]
    fn national_ids() {
        assert!(aba_routing(b"021000021"));
        assert!(!aba_routing(b"021000022"));
        assert!(aadhaar(b"234123412346"));
        assert!(!aadhaar(b"234123412345"));
        assert!(nhs(b"9434765919"));
        assert!(!nhs(b"9434765918"));
        assert!(uk_nino(b"AB123456C"));
        assert!(!uk_nino(b"QQ123456C"));
        assert!(!uk_nino(b"GB123456A"));
        assert!(spanish_dni(b"12345678Z"));
        assert!(!spanish_dni(b"12345678A"));
    }
}

//! Detection rules and their calibrated scores.
//!
//! Every finding comes from exactly one rule, and a rule's score is the precision that rule
//! measured on the calibration half of the labelled corpus (`corpus/`): of the spans the rule
//! produced there, the share that were right. That is histogram-binning calibration with one bin
//! per rule, and it is what makes "0.8" mean "right about 80 % of the time". `rampart sentinel
//! eval --calibrate` prints the table below from a fresh measurement; the evaluation half reports
//! the calibration error so drift is visible.

use serde::Serialize;

use crate::Class;

macro_rules! rules {
    ($($variant:ident => ($id:literal, $class:ident, $score:literal),)*) => {
        /// The rule behind a finding. Its id is stable and appears in scan output.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Rule { $($variant,)* }

        impl Rule {
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            pub const fn id(self) -> &'static str {
                match self { $(Rule::$variant => $id,)* }
            }

            pub const fn class(self) -> Class {
                match self { $(Rule::$variant => Class::$class,)* }
            }

            /// The calibrated score: the rule's measured precision.
            pub const fn score(self) -> f32 {
                match self { $(Rule::$variant => $score,)* }
            }

            pub fn from_id(id: &str) -> Option<Rule> {
                Rule::ALL.iter().copied().find(|r| r.id() == id)
            }
        }
    };
}

// BEGIN CALIBRATION (written by `rampart sentinel eval --calibrate`)
rules! {
    LiveSecret => ("credential.live_secret", Credential, 1.00),
    Email => ("email", Email, 0.99),
    ConnectionString => ("credential.connection_string", Credential, 0.93),
    Jwt => ("credential.jwt", Credential, 0.99),
    PrivateKey => ("credential.private_key", Credential, 0.99),
    ProviderKey => ("credential.provider_key", Credential, 0.95),
    SecretAssignment => ("credential.assignment", Credential, 0.98),
    PasswordPhrase => ("credential.phrase", Credential, 0.93),
    Iban => ("bank_account.iban", BankAccount, 0.98),
    BankAccountCue => ("bank_account.cue", BankAccount, 0.98),
    RoutingNumber => ("bank_account.routing", BankAccount, 0.96),
    Ipv4 => ("ip_address.v4", IpAddress, 0.99),
    Ipv6 => ("ip_address.v6", IpAddress, 0.96),
    DateOfBirthCue => ("date_of_birth.cue", DateOfBirth, 0.99),
    StreetAddress => ("address.street", Address, 0.98),
    StreetAddressFull => ("address.street_full", Address, 0.98),
    ForeignAddress => ("address.foreign", Address, 0.95),
    PostBox => ("address.po_box", Address, 0.95),
    Ssn => ("gov_id.ssn", GovId, 0.95),
    SsnCue => ("gov_id.ssn_cue", GovId, 0.98),
    NationalIdChecked => ("gov_id.national_checked", GovId, 0.96),
    GovIdCue => ("gov_id.cue", GovId, 0.96),
    PaymentCard => ("payment_card", PaymentCard, 0.99),
    PhoneFormatted => ("phone.formatted", Phone, 0.99),
    PhoneCue => ("phone.cue", Phone, 0.85),
    PhoneBare => ("phone.bare", Phone, 0.50),
    MinorAge => ("minor.age", Minor, 0.99),
    MinorTerm => ("minor.term", Minor, 0.98),
    HealthTerm => ("health.term", Health, 0.99),
    HealthCode => ("health.icd10", Health, 0.95),
    BiometricTerm => ("biometric.term", Biometric, 0.99),
    PersonTitle => ("person.title", Person, 0.95),
    PersonFullKnown => ("person.full_known", Person, 0.99),
    PersonFullGiven => ("person.full_given", Person, 0.93),
    PersonFullSurname => ("person.full_surname", Person, 0.97),
    PersonCue => ("person.cue", Person, 0.94),
    PersonGiven => ("person.given", Person, 0.60),
    PersonShape => ("person.shape", Person, 0.50),
}
// END CALIBRATION

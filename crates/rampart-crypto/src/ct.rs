use subtle::ConstantTimeEq;

/// Compares two byte strings in time that depends only on their lengths.
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A value that must not be printed, logged or serialised.
///
/// It has no `Display` and no `Serialize`; its `Debug` prints `[REDACTED]`; its memory is zeroized
/// when it is dropped. Reading it takes an explicit [`Secret::expose`].
pub struct Secret<T: Zeroize>(Box<T>);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(Box::new(value))
    }

    /// The value. Call sites are easy to grep for.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Mutable access, to fill a secret in place without a copy on the stack.
    pub fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> ZeroizeOnDrop for Secret<T> {}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self::new(self.expose().clone())
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

/// A secret string: a credential, a password, a connection string with a password in it.
pub type SecretString = Secret<String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretString::new("hunter2-canary".to_owned());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([REDACTED])");
        assert_eq!(s.expose(), "hunter2-canary");
    }
}

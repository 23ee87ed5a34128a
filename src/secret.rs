//! A secret value (session secrets, client secrets, bind passwords, admin
//! tokens): zeroized on drop, never printed. A leaf: the settings of every
//! feature hold secrets, so this imports nothing of the crate and none of
//! them has to import `config` for it.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value: zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Zeroizing::new(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text (client secrets are always text).
    pub fn expose_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

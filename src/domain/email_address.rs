//! `Email`: a syntactically valid e-mail address, and its masked form for logs.

use std::fmt;

use crate::domain::serde_str::serde_via_parse;

/// Longest address SMTP can carry (RFC 5321 path limit minus the brackets).
const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

/// Why a string is not an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// The input is the empty string.
    #[error("must not be empty")]
    Empty,
    /// The input is over 254 bytes, more than an SMTP path can carry.
    #[error("must be at most {MAX_LEN} characters")]
    TooLong,
    /// The input has no `@`, or more than one.
    #[error("must contain exactly one `@`")]
    At,
    /// The local part is empty, over 64 bytes, starts or ends with a dot,
    /// has two dots in a row, or holds a character that is neither an ASCII
    /// letter or digit nor one of the RFC 5322 atom specials.
    #[error("the part before `@` is not valid")]
    LocalPart,
    /// The domain is not two or more DNS labels of 1-63 ASCII letters,
    /// digits and inner hyphens ending in a top-level label of two or more
    /// letters (`localhost` and `example.c` are refused).
    #[error("the domain is not valid")]
    Domain,
}

/// An e-mail address in the pragmatic subset of RFC 5322 that mail servers
/// accept: dot-atom local part, a domain of at least two DNS labels. The domain
/// is stored in lower case; the local part is kept as given.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Checks `input` and keeps it with its domain lower-cased; the input is
    /// not trimmed, so surrounding spaces are an error
    /// ([`EmailError::LocalPart`] or [`EmailError::Domain`]). Each error
    /// names the first rule the input breaks, in the order of the variants.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        if input.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let mut parts = input.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::At);
        };
        if !valid_local(local) {
            return Err(EmailError::LocalPart);
        }
        if !valid_domain(domain) {
            return Err(EmailError::Domain);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address as parsed: the local part as given, the domain in lower
    /// case; at most 254 bytes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as logs may show it: `ab***@example.com`. At most the
    /// first two characters of the local part are shown (fewer when it is
    /// shorter), then `***`, then the whole domain.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or(("", &self.0));
        let shown: String = local.chars().take(2).collect();
        format!("{shown}***@{domain}")
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-.";
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let tld_ok = labels
        .last()
        .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    labels.len() >= 2
        && tld_ok
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug output is masked so an address never leaks through `{:?}` in a log.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

serde_via_parse!(Email);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        let email = Email::parse("Ann.Lee+smap@Example.COM").unwrap();
        assert_eq!(email.as_str(), "Ann.Lee+smap@example.com");
        assert!(Email::parse("a@b.vn").is_ok());
        assert!(Email::parse("user_1@mail.sub-domain.example.org").is_ok());
    }

    #[test]
    fn rejects_malformed_addresses_with_the_reason() {
        let cases = [
            ("", EmailError::Empty),
            ("plainaddress", EmailError::At),
            ("a@b@c.com", EmailError::At),
            ("@example.com", EmailError::LocalPart),
            (".ann@example.com", EmailError::LocalPart),
            ("ann..lee@example.com", EmailError::LocalPart),
            ("ann lee@example.com", EmailError::LocalPart),
            ("ann@", EmailError::Domain),
            ("ann@localhost", EmailError::Domain),
            ("ann@-example.com", EmailError::Domain),
            ("ann@example.c", EmailError::Domain),
            ("ann@exa_mple.com", EmailError::Domain),
        ];
        for (input, expected) in cases {
            assert_eq!(Email::parse(input), Err(expected), "input {input:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn masks_all_but_the_first_two_characters_of_the_local_part() {
        assert_eq!(
            Email::parse("abcdef@example.com").unwrap().masked(),
            "ab***@example.com"
        );
        assert_eq!(
            Email::parse("a@example.com").unwrap().masked(),
            "a***@example.com"
        );
        assert!(!format!("{:?}", Email::parse("abcdef@example.com").unwrap()).contains("cdef"));
    }
}

//! 128-bit values from the OS's random source, written as 32 lowercase hex digits: session
//! ids, and secrets (the client's birth secret, the server's tokens), which compare only in
//! constant time; and the rotation rule of PROTOCOL.md, section 5.

use std::fmt;

/// A session's id: 16 random bytes. Not a secret (a client may put it in its URL for a
/// load balancer, PROTOCOL.md, "Behind a load balancer"), so compared and hashed as any key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SessionId([u8; 16]);

/// 16 random bytes that prove who holds them: the client's birth secret, the server's
/// tokens. No `PartialEq`, so that no `==` with a timing that tells where two secrets differ
/// can be written: [`same_as`](Secret::same_as) takes the same time whatever the bytes.
#[derive(Clone, Copy)]
pub(crate) struct Secret([u8; 16]);

impl SessionId {
    /// Fresh bytes from the OS (`getrandom`).
    #[cfg_attr(not(any(test, feature = "reconnect")), allow(dead_code))]
    pub(crate) fn random() -> std::io::Result<Self> {
        random_bytes().map(Self)
    }

    /// Parses exactly 32 lowercase hex digits.
    pub(crate) fn parse(hex: &str) -> Option<Self> {
        parse_hex(hex).map(Self)
    }
}

impl Secret {
    /// Fresh bytes from the OS (`getrandom`). A machine whose random source fails cannot
    /// make sessions safely, so that is an error, not a weaker fallback.
    pub(crate) fn random() -> std::io::Result<Self> {
        random_bytes().map(Self)
    }

    /// Parses exactly 32 lowercase hex digits.
    pub(crate) fn parse(hex: &str) -> Option<Self> {
        parse_hex(hex).map(Self)
    }

    /// Equal in constant time: how long it takes says nothing of where two secrets differ.
    pub(crate) fn same_as(&self, other: &Secret) -> bool {
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= a ^ b;
        }
        std::hint::black_box(diff) == 0
    }
}

fn random_bytes() -> std::io::Result<[u8; 16]> {
    let mut bytes = [0; 16];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes)
}

fn parse_hex(hex: &str) -> Option<[u8; 16]> {
    let hex = hex.as_bytes();
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0; 16];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(bytes)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn write_hex(bytes: &[u8; 16], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

/// The 32 hex digits.
impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// The 32 hex digits.
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

/// Never the digits: a secret must not reach a log through `{:?}`.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The tokens a server accepts for one session: the one the client last proved it holds
/// (its birth secret at first, then the token of its latest resume) and the two newest
/// issued, which the client may or may not have received. Two, not one: a `hello` that
/// overtook an older one with the same token got a `welcome` whose token must survive the
/// older `hello`'s late resume (which takes over, and issues another).
#[derive(Debug)]
pub(crate) struct Tokens {
    proven: Secret,
    previous: Secret,
    issued: Secret,
}

impl Tokens {
    /// A session born with the client's `secret`; issues its first token.
    pub(crate) fn new(secret: Secret) -> std::io::Result<Self> {
        let issued = Secret::random()?;
        Ok(Self {
            proven: secret,
            previous: issued,
            issued,
        })
    }

    /// Whether `presented` is one of the valid tokens. Every comparison always runs.
    pub(crate) fn accepts(&self, presented: &Secret) -> bool {
        let proven = self.proven.same_as(presented);
        let previous = self.previous.same_as(presented);
        let issued = self.issued.same_as(presented);
        proven | previous | issued
    }

    /// A resume with `presented` (accepted) succeeded: it is now the proven token, and a
    /// new one is issued. Every token older than the two newest issued stops being valid.
    pub(crate) fn rotate(&mut self, presented: Secret) -> std::io::Result<Secret> {
        let next = Secret::random()?;
        self.proven = presented;
        self.previous = self.issued;
        self.issued = next;
        Ok(next)
    }

    /// The newest token, for a `welcome`.
    pub(crate) fn issued(&self) -> Secret {
        self.issued
    }
}

/// `Secret` has no `PartialEq`: this fails to compile if one is added (two impls of
/// `NotEq<_>` would apply, and the type could not be inferred).
const _: () = {
    trait NotEq<A> {
        const CHECK: () = ();
    }
    impl<T: ?Sized> NotEq<()> for T {}
    #[allow(dead_code)]
    struct Compared;
    impl<T: ?Sized + PartialEq> NotEq<Compared> for T {}
    <Secret as NotEq<_>>::CHECK
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_anything_else() {
        let secret = Secret::random().unwrap();
        let hex = secret.to_string();
        assert_eq!(hex.len(), 32);
        assert!(Secret::parse(&hex).unwrap().same_as(&secret));
        assert_eq!(
            Secret::parse(&hex.to_uppercase()).is_some(),
            hex == hex.to_uppercase()
        );
        assert!(Secret::parse(&hex[1..]).is_none());
        assert!(Secret::parse(&format!("{hex}0")).is_none());
        assert!(Secret::parse("g0000000000000000000000000000000").is_none());
        assert!(Secret::parse("é000000000000000000000000000000").is_none());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        let sid = SessionId::random().unwrap();
        assert_eq!(SessionId::parse(&sid.to_string()), Some(sid));
        assert_eq!(format!("{sid:?}"), format!("SessionId({sid})"));
    }

    #[test]
    fn random_secrets_differ() {
        assert!(
            !Secret::random()
                .unwrap()
                .same_as(&Secret::random().unwrap())
        );
        assert_ne!(SessionId::random().unwrap(), SessionId::random().unwrap());
    }

    /// PROTOCOL.md, section 5: the proven token and the two newest issued are valid; a
    /// resume with any of them rotates; everything older is refused.
    #[test]
    fn rotation_keeps_the_proven_token_and_the_two_newest() {
        let birth = Secret::random().unwrap();
        let mut tokens = Tokens::new(birth).unwrap();
        let t1 = tokens.issued();
        assert!(tokens.accepts(&birth) && tokens.accepts(&t1));
        assert!(!tokens.accepts(&Secret::random().unwrap()));

        // The welcome carrying t1 was lost: the client resumes with its birth secret again.
        let t2 = tokens.rotate(birth).unwrap();
        assert!(tokens.accepts(&birth) && tokens.accepts(&t1) && tokens.accepts(&t2));

        // The client got t2 and resumes with it: the birth secret and t1 are stale now.
        let t3 = tokens.rotate(t2).unwrap();
        assert!(tokens.accepts(&t2) && tokens.accepts(&t3));
        assert!(!tokens.accepts(&birth));
        assert!(!tokens.accepts(&t1));

        // A late hello with t2 (overtaken by the one that got t3) resumes too: t3, which
        // the client holds, stays valid; t2's next resume makes t3's predecessor stale.
        let t4 = tokens.rotate(t2).unwrap();
        assert!(tokens.accepts(&t3) && tokens.accepts(&t4));
        let t5 = tokens.rotate(t3).unwrap();
        assert!(tokens.accepts(&t3) && tokens.accepts(&t4) && tokens.accepts(&t5));
        assert!(!tokens.accepts(&t2));
    }
}

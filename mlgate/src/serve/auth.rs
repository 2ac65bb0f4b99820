//! Who may call what: bearer tokens for predictions, feedback and administration, each kind with
//! several tokens at once (for rotation), compared in constant time.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The tokens one kind of caller may present (empty: none configured).
#[derive(Clone, Default)]
pub struct TokenSet {
    /// The tokens' sha256 digests: comparing digests takes the same time whatever the length of
    /// the token presented, and keeps no token itself in memory longer than it takes to hash it.
    digests: Vec<[u8; 32]>,
}

impl TokenSet {
    /// The tokens of `text`, one a line; blank lines and lines starting with `#` are skipped,
    /// and spaces around a token are not part of it.
    pub fn parse(text: &str) -> TokenSet {
        let digests = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        TokenSet { digests }
    }

    /// Adds the tokens of `other`.
    pub fn extend(&mut self, other: TokenSet) {
        self.digests.extend(other.digests);
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when `presented` is one of the tokens. Every configured token is compared, each in
    /// constant time, so that the answer's timing says nothing of which one (or how much of one)
    /// matched.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = subtle::Choice::from(0);
        for d in &self.digests {
            found |= d.ct_eq(&digest);
        }
        found.into()
    }
}

/// The tokens of each kind of caller.
#[derive(Clone, Default)]
pub struct Tokens {
    /// For `POST /v1/predict` and `GET /v1/model`.
    pub prediction: TokenSet,
    /// For `POST /v1/feedback`; feedback is refused while none is configured.
    pub feedback: TokenSet,
    /// For `GET /metrics` (the probes stay open).
    pub admin: TokenSet,
}

/// What a request needs to be served.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Access {
    /// Nothing (the probes, an unknown route).
    Open,
    /// A prediction token, when some are configured.
    Prediction,
    /// A feedback token; none configured: refused.
    Feedback,
    /// An administration token, when some are configured.
    Admin,
}

/// Why a request is not served.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// No token, or not one of the configured ones: 401.
    Unauthenticated,
    /// Feedback while no feedback token is configured: 403.
    FeedbackDisabled,
}

impl Tokens {
    /// Checks the `Authorization` header's value (if any) against what `access` needs.
    pub fn check(&self, access: Access, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        let set = match access {
            Access::Open => return Ok(()),
            Access::Prediction if self.prediction.is_empty() => return Ok(()),
            Access::Admin if self.admin.is_empty() => return Ok(()),
            Access::Feedback if self.feedback.is_empty() => return Err(Refusal::FeedbackDisabled),
            Access::Prediction => &self.prediction,
            Access::Feedback => &self.feedback,
            Access::Admin => &self.admin,
        };
        match authorization.and_then(bearer) {
            Some(token) if set.accepts(token) => Ok(()),
            _ => Err(Refusal::Unauthenticated),
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value (the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

/// Refuses to serve predictions to anyone on the network without a token: a server listening
/// beyond loopback needs a prediction token, unless anonymous predictions are allowed.
pub fn check_exposure(listen: SocketAddr, tokens: &Tokens, allow_anonymous: bool) -> Result<()> {
    if !listen.ip().is_loopback() && tokens.prediction.is_empty() && !allow_anonymous {
        bail!(
            "refusing to serve predictions on {listen} without a token: give one with \
             --prediction-token-file FILE or MLGATE_PREDICTION_TOKEN, or say \
             --allow-anonymous-predictions (or listen on 127.0.0.1)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_token_is_accepted_and_nothing_else() {
        let set = TokenSet::parse("# rotated on Monday\n  old-token \n\nnew-token\n");
        assert!(set.accepts(b"old-token"));
        assert!(set.accepts(b"new-token"));
        assert!(!set.accepts(b"new-toke"));
        assert!(!set.accepts(b""));
        assert!(!set.accepts(b"# rotated on Monday"));
        let tokens = Tokens { prediction: set.clone(), feedback: TokenSet::default(), admin: set };
        assert_eq!(tokens.check(Access::Prediction, Some(b"Bearer new-token")), Ok(()));
        assert_eq!(tokens.check(Access::Prediction, Some(b"bearer old-token")), Ok(()));
        assert_eq!(tokens.check(Access::Prediction, Some(b"Basic new-token")), Err(Refusal::Unauthenticated));
        assert_eq!(tokens.check(Access::Prediction, None), Err(Refusal::Unauthenticated));
        assert_eq!(tokens.check(Access::Feedback, Some(b"Bearer new-token")), Err(Refusal::FeedbackDisabled));
        assert_eq!(tokens.check(Access::Open, None), Ok(()));
    }

    #[test]
    fn only_loopback_may_serve_anonymous_predictions() {
        let none = Tokens::default();
        assert!(check_exposure("127.0.0.1:8080".parse().unwrap(), &none, false).is_ok());
        assert!(check_exposure("[::1]:8080".parse().unwrap(), &none, false).is_ok());
        let e = check_exposure("0.0.0.0:8080".parse().unwrap(), &none, false).unwrap_err().to_string();
        assert!(e.contains("--allow-anonymous-predictions"), "{e}");
        assert!(check_exposure("0.0.0.0:8080".parse().unwrap(), &none, true).is_ok());
        let with = Tokens { prediction: TokenSet::parse("t"), ..Tokens::default() };
        assert!(check_exposure("0.0.0.0:8080".parse().unwrap(), &with, false).is_ok());
    }
}

//! Receipts: what each prediction's answer carries so that its feedback joins on any replica
//! holding the key, without the prediction log. A receipt is `KEY_ID.PAYLOAD.TAG`: the key's id
//! (8 characters, from a hash of the key), the claims (model, version, probability, decision,
//! time in unix seconds, a random nonce; while a rollout is open, then the role of the version that
//! answered and, in shadow mode, the shadow's version, probability and decision) as a JSON array
//! in base64url, and the HMAC-SHA256 of
//! `KEY_ID.PAYLOAD` under that key in base64url (no padding anywhere). The tag is checked on the
//! text received before anything of it is read, so that a receipt altered anywhere is `altered`
//! (a key id altered names no key held: `foreign`). Each replica counts a receipt once: it
//! remembers the nonces of the receipts it joined until they expire ([`Seen`], bounded).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::rollout::Role;

/// The longest receipt read, in bytes (a model and a version of a few dozen bytes make ~200).
pub const MAX_RECEIPT_BYTES: usize = 1024;

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// Characters of a key id.
const KEY_ID_CHARS: usize = 8;

/// Characters of a tag (32 bytes in base64url without padding).
const TAG_CHARS: usize = 43;

/// Why a receipt is refused: the `reason` label of `mlgate_feedback_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not a receipt: not a string, too long, not three parts, not base64url, not the claims.
    Malformed,
    /// Signed by a key this replica holds, but not this text: changed after it was signed.
    Altered,
    /// Signed by a key this replica does not hold, or for another model than this server's.
    Foreign,
    /// Older than `--receipt-ttl`, or older than every receipt this replica still remembers.
    Expired,
    /// Joined already on this replica.
    Duplicate,
}

impl Reason {
    /// Every reason, in the order of the metric's series.
    pub const ALL: [Reason; 5] =
        [Reason::Malformed, Reason::Altered, Reason::Foreign, Reason::Expired, Reason::Duplicate];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Altered => "altered",
            Reason::Foreign => "foreign",
            Reason::Expired => "expired",
            Reason::Duplicate => "duplicate",
        }
    }
}

/// A receipt refused: why, and a sentence for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The reason counted.
    pub reason: Reason,
    /// What was wrong, in words.
    pub detail: String,
}

fn refuse(reason: Reason, detail: impl Into<String>) -> Refused {
    Refused { reason, detail: detail.into() }
}

/// What a receipt says of its prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The model's name (the server's `model` label).
    pub model: String,
    /// The version that answered.
    pub version: String,
    /// The probability answered.
    pub probability: f64,
    /// The decision answered (the probability at or above the served threshold).
    pub decision: bool,
    /// When, in unix seconds.
    pub time: u64,
    /// Random: what makes the receipt one of a kind.
    pub nonce: [u8; 16],
    /// What the version that answered was doing: the baseline, or the canary of a rollout.
    pub role: Role,
    /// In shadow mode, what the shadow said of the same record.
    pub shadow: Option<Shadow>,
}

/// [`Claims`] borrowed: what [`ReceiptKeys::sign`] reads, made a prediction without copying
/// the model's name or the version.
#[derive(Clone, Copy)]
pub struct ClaimsOf<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub probability: f64,
    pub decision: bool,
    pub time: u64,
    pub nonce: [u8; 16],
    pub role: Role,
    pub shadow: Option<&'a Shadow>,
}

impl<'a> From<&'a Claims> for ClaimsOf<'a> {
    fn from(c: &'a Claims) -> ClaimsOf<'a> {
        ClaimsOf {
            model: &c.model,
            version: &c.version,
            probability: c.probability,
            decision: c.decision,
            time: c.time,
            nonce: c.nonce,
            role: c.role,
            shadow: c.shadow.as_ref(),
        }
    }
}

/// What a shadow said of a record whose answer the baseline gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    /// The candidate version scoring in the shadow.
    pub version: String,
    /// Its probability.
    pub probability: f64,
    /// Its decision, at its own threshold.
    pub decision: bool,
}

/// The keys receipts are signed and verified with: the first signs, every one verifies (so that
/// a new key can be rolled out beside the old one). Never printed: its `Debug` says how many.
#[derive(Clone)]
pub struct ReceiptKeys {
    keys: Vec<Key>,
    /// True when the key was drawn for this process (no key configured).
    drawn: bool,
}

#[derive(Clone)]
struct Key {
    id: String,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ReceiptKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptKeys({} key(s))", self.keys.len())
    }
}

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| std::io::Error::other(format!("no random bytes: {e}")))?;
    Ok(bytes)
}

/// `n` random values of 128 bits, from the thread's cryptographically secure generator
/// (`rand::thread_rng`: ChaCha12, seeded from the operating system and seeded again every
/// 64 KiB it gives), not a system call a request.
pub fn random_nonces(n: usize) -> std::io::Result<Vec<[u8; 16]>> {
    use rand::RngCore;
    let mut rng = rand::thread_rng();
    let mut nonces = vec![[0u8; 16]; n];
    for nonce in &mut nonces {
        rng.try_fill_bytes(nonce).map_err(|e| std::io::Error::other(format!("no random bytes: {e}")))?;
    }
    Ok(nonces)
}

/// `n` random ids of 128 bits, in hexadecimal.
pub fn random_ids(n: usize) -> std::io::Result<Vec<String>> {
    Ok(random_nonces(n)?.iter().map(|b| hex(b)).collect())
}

/// Lower-case hexadecimal, written into one string (an id per prediction: on the hot path).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

impl ReceiptKeys {
    /// The keys, the first signing; `Err` names the key too short by its place (never its bytes).
    pub fn new(secrets: Vec<Vec<u8>>) -> Result<ReceiptKeys, String> {
        if secrets.is_empty() {
            return Err("no receipt key".into());
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, secret) in secrets.iter().enumerate() {
            if secret.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "receipt key {} is {} bytes long; a key has at least {MIN_KEY_BYTES} (e.g. `openssl rand -base64 32`)",
                    i + 1,
                    secret.len()
                ));
            }
            let mut digest = Sha256::new();
            digest.update(b"mlgate receipt key id\0");
            digest.update(secret);
            let id = URL_SAFE_NO_PAD.encode(&digest.finalize()[..6]);
            let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
            keys.push(Key { id, mac });
        }
        Ok(ReceiptKeys { keys, drawn: false })
    }

    /// A key drawn for this process: its receipts join only on this replica, until it restarts.
    pub fn drawn() -> std::io::Result<ReceiptKeys> {
        let secret = random::<32>()?;
        let mut keys = ReceiptKeys::new(vec![secret.to_vec()]).expect("32 bytes are long enough");
        keys.drawn = true;
        Ok(keys)
    }

    /// True when the key was drawn for this process.
    pub fn is_drawn(&self) -> bool {
        self.drawn
    }

    fn tag(key: &Key, signed: &str) -> String {
        URL_SAFE_NO_PAD.encode(ReceiptKeys::mac(key, signed))
    }

    /// HMAC-SHA256 of `signed` with `key`: the tag's bytes.
    fn mac(key: &Key, signed: &str) -> [u8; 32] {
        let mut mac = key.mac.clone();
        mac.update(signed.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The receipt of `claims`, signed with the first key.
    pub fn sign<'a>(&self, claims: impl Into<ClaimsOf<'a>>) -> String {
        self.sign_with(claims, &mut Vec::with_capacity(128))
    }

    /// [`ReceiptKeys::sign`], writing the claims' text in `payload` (cleared first): one buffer
    /// for a request's receipts.
    pub fn sign_with<'a>(&self, claims: impl Into<ClaimsOf<'a>>, payload: &mut Vec<u8>) -> String {
        let claims = claims.into();
        let key = &self.keys[0];
        // The claims as a compact JSON array, written value by value (serde_json's text of
        // each: the array `payload_as_values` builds, without building it).
        payload.clear();
        payload.push(b'[');
        // Each claim after the `[`, comma-separated.
        fn value(payload: &mut Vec<u8>, v: &impl serde::Serialize) {
            if payload.len() > 1 {
                payload.push(b',');
            }
            serde_json::to_writer(payload, v).expect("a claim serialises");
        }
        value(payload, &claims.model);
        value(payload, &claims.version);
        value(payload, &claims.probability);
        value(payload, &u8::from(claims.decision));
        value(payload, &claims.time);
        let mut nonce = [0u8; 22];
        let written = URL_SAFE_NO_PAD.encode_slice(claims.nonce, &mut nonce).expect("16 bytes are 22 in base64url");
        value(payload, &std::str::from_utf8(&nonce[..written]).expect("base64url is ASCII"));
        // A receipt of the baseline without a shadow is written as before rollouts existed: what
        // replicas of an older mlgate read.
        if claims.role != Role::Baseline || claims.shadow.is_some() {
            value(payload, &claims.role.name());
        }
        if let Some(shadow) = claims.shadow {
            value(payload, &shadow.version);
            value(payload, &shadow.probability);
            value(payload, &u8::from(shadow.decision));
        }
        payload.push(b']');
        let mut receipt = String::with_capacity(KEY_ID_CHARS + 2 + payload.len() * 4 / 3 + 4 + TAG_CHARS);
        receipt.push_str(&key.id);
        receipt.push('.');
        URL_SAFE_NO_PAD.encode_string(&*payload, &mut receipt);
        let tag = ReceiptKeys::mac(key, &receipt);
        receipt.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut receipt);
        receipt
    }

    /// The claims of `receipt` when one of the keys signed it, it is for `model`, and it is at
    /// most `ttl` seconds old at `now`; else why not. Whether it was joined already is [`Seen`]'s
    /// to say.
    pub fn verify(&self, receipt: &str, model: &str, now: u64, ttl: u64) -> Result<Claims, Refused> {
        if receipt.len() > MAX_RECEIPT_BYTES {
            return Err(refuse(
                Reason::Malformed,
                format!("{} bytes; a receipt has at most {MAX_RECEIPT_BYTES}", receipt.len()),
            ));
        }
        let base64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let parts: Vec<&str> = receipt.split('.').collect();
        let [id, payload, tag] = parts[..] else {
            return Err(refuse(
                Reason::Malformed,
                "a receipt is three base64url parts joined by dots, as the prediction gave it",
            ));
        };
        if id.len() != KEY_ID_CHARS
            || tag.len() != TAG_CHARS
            || payload.is_empty()
            || ![id, payload, tag].into_iter().all(base64url)
        {
            return Err(refuse(
                Reason::Malformed,
                "a receipt is three base64url parts joined by dots, as the prediction gave it",
            ));
        }
        let Some(key) = self.keys.iter().find(|k| k.id == id) else {
            return Err(refuse(Reason::Foreign, format!("signed by a key this server does not hold (key id {id})")));
        };
        let signed = &receipt[..id.len() + 1 + payload.len()];
        if !bool::from(ReceiptKeys::tag(key, signed).as_bytes().ct_eq(tag.as_bytes())) {
            return Err(refuse(
                Reason::Altered,
                "its signature does not match its text: it was changed after it was signed",
            ));
        }
        let claims = decode(payload).ok_or_else(|| {
            refuse(Reason::Malformed, "signed, but its claims cannot be read (a receipt of another mlgate?)")
        })?;
        if claims.model != model {
            return Err(refuse(
                Reason::Foreign,
                format!(
                    "a receipt of model `{}`; this server serves `{model}`",
                    ::model::data::report::echo(&claims.model)
                ),
            ));
        }
        if now > claims.time.saturating_add(ttl) {
            return Err(refuse(
                Reason::Expired,
                format!("made {}s ago; receipts are taken for {ttl}s (--receipt-ttl)", now - claims.time),
            ));
        }
        Ok(claims)
    }
}

/// The claims of a payload that verified.
fn decode(payload: &str) -> Option<Claims> {
    use serde_json::Value;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let fields: Vec<Value> = serde_json::from_slice(&bytes).ok()?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let probability = |v: &Value| v.as_f64().filter(|p| (0.0..=1.0).contains(p));
    let decision = |v: &Value| match v.as_u64()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    };
    let (role, shadow) = match &fields[..] {
        [_, _, _, _, _, _] => (Role::Baseline, None),
        [_, _, _, _, _, _, role] => (Role::parse(role.as_str()?)?, None),
        [_, _, _, _, _, _, role, version, p, d] => (
            Role::parse(role.as_str()?)?,
            Some(Shadow { version: text(version)?, probability: probability(p)?, decision: decision(d)? }),
        ),
        _ => return None,
    };
    let nonce: [u8; 16] = URL_SAFE_NO_PAD.decode(fields[5].as_str()?).ok()?.try_into().ok()?;
    Some(Claims {
        model: text(&fields[0])?,
        version: text(&fields[1])?,
        probability: probability(&fields[2])?,
        decision: decision(&fields[3])?,
        time: fields[4].as_u64()?,
        nonce,
        role,
        shadow,
    })
}

/// What one remembered receipt costs: its place in the B-tree (expiry and nonce, 24 bytes) and
/// the tree's share of node headers and spare room, rounded up.
pub const SEEN_ENTRY_BYTES: usize = 48;

/// The receipts joined on this replica, remembered until they expire so that each is counted
/// once; bounded in entries and bytes. When full, the receipt that expires first is forgotten,
/// and from then on every receipt that expires no later than it is refused as expired: a
/// receipt is never counted twice, whatever the load.
pub struct Seen {
    /// (expiry, nonce): a receipt always has the same, so the pair is its key and its place in
    /// the order of expiry.
    joined: std::collections::BTreeSet<(u64, u128)>,
    capacity: usize,
    /// The latest expiry among the receipts forgotten before they expired.
    forgotten_until: Option<u64>,
}

impl Seen {
    /// Remembers at most `entries` receipts and `bytes` bytes of them (at least one).
    pub fn new(entries: usize, bytes: usize) -> Seen {
        Seen {
            joined: std::collections::BTreeSet::new(),
            capacity: entries.min(bytes / SEEN_ENTRY_BYTES).max(1),
            forgotten_until: None,
        }
    }

    /// Records the receipt of `claims`, which expires at `expiry`, as joined at `now`; `Err` when
    /// it was joined already, or is older than every receipt still remembered.
    pub fn join(&mut self, claims: &Claims, expiry: u64, now: u64) -> Result<(), Refused> {
        while self.joined.first().is_some_and(|&(e, _)| e < now) {
            self.joined.pop_first();
        }
        let entry = (expiry, u128::from_be_bytes(claims.nonce));
        if self.joined.contains(&entry) {
            return Err(refuse(Reason::Duplicate, "this receipt was joined already; each is counted once"));
        }
        if self.forgotten_until.is_some_and(|f| expiry <= f) {
            return Err(refuse(
                Reason::Expired,
                "older than every receipt this replica still remembers (--receipt-seen): it cannot tell it from a replay",
            ));
        }
        self.joined.insert(entry);
        while self.joined.len() > self.capacity {
            let (e, _) = self.joined.pop_first().expect("longer than the capacity");
            self.forgotten_until = Some(self.forgotten_until.map_or(e, |f| f.max(e)));
        }
        Ok(())
    }

    /// Receipts remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.joined.len()
    }

    /// The bytes they take, as the bound counts them.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.joined.len() * SEEN_ENTRY_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(model: &str, time: u64) -> Claims {
        Claims {
            model: model.into(),
            version: "v3".into(),
            probability: 0.123_456_789_012_345_67,
            decision: false,
            time,
            nonce: random().unwrap(),
            role: Role::Baseline,
            shadow: None,
        }
    }

    fn keys(secrets: &[&str]) -> ReceiptKeys {
        ReceiptKeys::new(secrets.iter().map(|s| s.as_bytes().to_vec()).collect()).unwrap()
    }

    #[test]
    fn a_receipt_verifies_under_any_key_held_and_says_what_was_answered() {
        let old = keys(&["the old key, long enough"]);
        let both = keys(&["the new key, long enough", "the old key, long enough"]);
        let c = claims("churn", 1_000);
        let receipt = old.sign(&c);
        assert!(receipt.len() < 200, "{receipt}");
        let got = both.verify(&receipt, "churn", 1_000, 60).unwrap();
        assert_eq!(got, c);
        assert_eq!(got.probability.to_bits(), c.probability.to_bits());
        // The new key signs; a server holding only the old one does not know it.
        let new = both.sign(&c);
        assert_eq!(old.verify(&new, "churn", 1_000, 60).unwrap_err().reason, Reason::Foreign);
        assert!(format!("{both:?}").ends_with("(2 key(s))"));
        assert!(!format!("{both:?}").contains("long enough"));
    }

    /// The claims as the array of JSON values receipts were first written from.
    fn payload_as_values(claims: &Claims) -> Vec<u8> {
        let mut fields = vec![
            serde_json::Value::from(claims.model.as_str()),
            claims.version.as_str().into(),
            claims.probability.into(),
            u8::from(claims.decision).into(),
            claims.time.into(),
            URL_SAFE_NO_PAD.encode(claims.nonce).into(),
        ];
        if claims.role != Role::Baseline || claims.shadow.is_some() {
            fields.push(claims.role.name().into());
        }
        if let Some(shadow) = &claims.shadow {
            fields.extend([
                shadow.version.as_str().into(),
                shadow.probability.into(),
                u8::from(shadow.decision).into(),
            ]);
        }
        serde_json::to_vec(&fields).unwrap()
    }

    #[test]
    fn the_payload_is_written_byte_for_byte_as_the_array_of_values_was() {
        let k = keys(&["a key of the fleet, 32 bytes long"]);
        let shadow = Shadow { version: "v\"4\u{e9}".into(), probability: 1.0, decision: true };
        for (model, probability, role, shadow) in [
            ("churn", 0.123_456_789_012_345_67, Role::Baseline, None),
            ("a \"quoted\"\nmodel", 0.0, Role::Canary, None),
            ("churn", 1.0, Role::Baseline, Some(shadow.clone())),
            ("churn", 1e-300, Role::Canary, Some(shadow)),
            ("churn", f64::NAN, Role::Baseline, None),
        ] {
            let c = Claims { model: model.into(), probability, role, shadow, ..claims("x", u64::MAX) };
            let receipt = k.sign(&c);
            let payload = receipt.split('.').nth(1).unwrap();
            assert_eq!(URL_SAFE_NO_PAD.decode(payload).unwrap(), payload_as_values(&c), "{receipt}");
            let (signed, tag) = receipt.rsplit_once('.').unwrap();
            assert_eq!(tag, ReceiptKeys::tag(&k.keys[0], signed));
        }
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let k = keys(&["a key of the fleet, 32 bytes long"]);
        let receipt = k.sign(&claims("churn", 1_000));
        let reason = |r: &str, model: &str, now: u64| k.verify(r, model, now, 60).unwrap_err().reason;
        // Any one character changed, in the payload or the tag: altered.
        let (id_len, tag_at) = (KEY_ID_CHARS + 1, receipt.rfind('.').unwrap() + 1);
        for at in (id_len..receipt.len()).filter(|&i| i + 1 != tag_at) {
            let mut altered = receipt.clone().into_bytes();
            altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            assert_eq!(reason(&altered, "churn", 1_000), Reason::Altered, "at {at}: {altered}");
        }
        assert_eq!(reason(&receipt, "other-model", 1_000), Reason::Foreign);
        assert_eq!(
            reason(&keys(&["another fleet's key, long too"]).sign(&claims("churn", 1_000)), "churn", 1_000),
            Reason::Foreign
        );
        assert_eq!(reason(&receipt, "churn", 1_061), Reason::Expired);
        assert!(k.verify(&receipt, "churn", 1_060, 60).is_ok());
        for malformed in ["", "a.b", "abc", "x.y.z.w", &format!("{receipt}."), &"a".repeat(2000), "aaaaaaaa.!!.bbb"] {
            assert_eq!(reason(malformed, "churn", 1_000), Reason::Malformed, "{malformed}");
        }
        assert!(ReceiptKeys::new(vec![b"short".to_vec()]).unwrap_err().contains("receipt key 1 is 5 bytes long"));
    }

    /// A receipt with a shadow carries its role and the shadow's version, probability and
    /// decision, signed with the rest: it verifies with every bit of them, and any character
    /// changed is refused as altered. A baseline's receipt without a shadow keeps the six fields
    /// an older mlgate reads.
    #[test]
    fn receipts_with_a_shadow_or_a_role_verify_and_altered_ones_are_refused() {
        let k = keys(&["a key of the fleet, 32 bytes long"]);
        let mut c = claims("churn", 1_000);
        c.shadow = Some(Shadow { version: "v4".into(), probability: 0.987_654_321_012_345_6, decision: true });
        let receipt = k.sign(&c);
        let got = k.verify(&receipt, "churn", 1_000, 60).unwrap();
        assert_eq!(got, c);
        let shadow = got.shadow.unwrap();
        assert_eq!(shadow.probability.to_bits(), 0.987_654_321_012_345_6f64.to_bits());
        let (id_len, tag_at) = (KEY_ID_CHARS + 1, receipt.rfind('.').unwrap() + 1);
        for at in (id_len..receipt.len()).filter(|&i| i + 1 != tag_at) {
            let mut altered = receipt.clone().into_bytes();
            altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            assert_eq!(k.verify(&altered, "churn", 1_000, 60).unwrap_err().reason, Reason::Altered, "at {at}");
        }
        let mut canary = claims("churn", 1_000);
        canary.role = Role::Canary;
        assert_eq!(k.verify(&k.sign(&canary), "churn", 1_000, 60).unwrap().role, Role::Canary);
        let payload = |r: &str| -> Vec<serde_json::Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(r.split('.').nth(1).unwrap()).unwrap()).unwrap()
        };
        assert_eq!(payload(&k.sign(&claims("churn", 1_000))).len(), 6);
        assert_eq!(payload(&k.sign(&canary))[6], "canary");
        assert_eq!(
            payload(&receipt)[6..],
            [serde_json::json!("baseline"), "v4".into(), shadow.probability.into(), 1.into()]
        );
    }

    #[test]
    fn a_receipt_is_joined_once_and_the_memory_of_them_is_bounded() {
        let mut seen = Seen::new(3, 1 << 20);
        let cs: Vec<Claims> = (0..5).map(|i| claims("churn", 100 + i)).collect();
        for c in &cs[..3] {
            seen.join(c, c.time + 60, 100).unwrap();
        }
        assert_eq!(seen.join(&cs[1], cs[1].time + 60, 100).unwrap_err().reason, Reason::Duplicate);
        // Full: the first to expire is forgotten, and so is anything as old.
        seen.join(&cs[3], cs[3].time + 60, 100).unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen.join(&cs[0], cs[0].time + 60, 100).unwrap_err().reason, Reason::Expired);
        assert_eq!(seen.join(&cs[1], cs[1].time + 60, 100).unwrap_err().reason, Reason::Duplicate);
        // Past their expiry they leave on their own.
        seen.join(&cs[4], cs[4].time + 60, 164).unwrap();
        assert_eq!(seen.len(), 1);
        // The bound in bytes holds as well.
        let mut small = Seen::new(1000, 10 * SEEN_ENTRY_BYTES);
        for i in 0..100 {
            let _ = small.join(&claims("churn", i), i + 60, 0);
            assert!(small.bytes() <= 10 * SEEN_ENTRY_BYTES);
        }
        assert_eq!(small.len(), 10);
    }

    #[test]
    fn ids_are_random_128_bit_hex() {
        let ids = random_ids(1000).unwrap();
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 1000);
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}

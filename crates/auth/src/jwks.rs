//! JWK Set loading and caching (crate-private).
//!
//! One [`JwksCache`] exists per distinct [`JwksSource`], so providers that
//! share a key set (the two WorkOS issuers) share one cache and one fetch.
//!
//! Refresh rules, with `now` from the verifier's injected clock:
//! - no keys yet: fetch (at most one attempt per second while fetches fail);
//! - keys older than the TTL, or a token whose `kid` is not in the set: refetch,
//!   but at most once per `jwks_refresh_min_interval` since the last attempt;
//! - a failed refetch keeps the previous keys, so an outage of the JWKS
//!   endpoint does not break tokens signed with known keys;
//! - concurrent callers queue on one lock; whoever arrives after an attempt
//!   finished uses its outcome instead of fetching again.
//!
//! Inline sources never refetch.

use std::sync::Arc;
use std::time::Duration;

use errors::{Error, ErrorCode, Result};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use parking_lot::Mutex;

use crate::config::JwksSource;
use crate::invalid_token;

/// Largest JWKS document accepted from a URL or file.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// While no keys were ever loaded, failed fetches are retried at most this often.
const NO_KEYS_RETRY_SECS: u64 = 1;

/// A usable verification key from a JWKS.
struct VerificationKey {
    jwk: Jwk,
    key: DecodingKey,
}

/// The usable keys of one JWKS document.
pub(crate) struct KeySet {
    keys: Vec<VerificationKey>,
}

enum Lookup<'a> {
    Found(&'a VerificationKey),
    UnknownKid,
    KidRequired(usize),
    Empty,
}

impl KeySet {
    /// Builds the usable keys of `set`, skipping keys the library cannot load.
    pub(crate) fn from_jwk_set(set: &JwkSet, source: &str) -> Self {
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| match DecodingKey::from_jwk(jwk) {
                Ok(key) => Some(VerificationKey {
                    jwk: jwk.clone(),
                    key,
                }),
                Err(e) => {
                    tracing::warn!(
                        source,
                        kid = jwk.common.key_id.as_deref().unwrap_or("<none>"),
                        error = %e,
                        "skipping unusable JWK"
                    );
                    None
                }
            })
            .collect();
        Self { keys }
    }

    /// Parses a JWKS document, skipping individual keys that do not parse so
    /// one exotic key cannot take the whole set down.
    fn parse(bytes: &[u8], source: &str) -> std::result::Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a JWKS document (expected {{\"keys\": [...]}}): {e}"))?;
        let mut set = JwkSet::default();
        for value in raw.keys {
            match serde_json::from_value::<Jwk>(value) {
                Ok(jwk) => set.keys.push(jwk),
                Err(e) => tracing::warn!(source, error = %e, "skipping malformed JWK"),
            }
        }
        Ok(Self::from_jwk_set(&set, source))
    }

    fn lookup(&self, kid: Option<&str>) -> Lookup<'_> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.jwk.common.key_id.as_deref() == Some(kid))
                .map_or(Lookup::UnknownKid, Lookup::Found),
            None => match self.keys.as_slice() {
                [] => Lookup::Empty,
                [only] => Lookup::Found(only),
                many => Lookup::KidRequired(many.len()),
            },
        }
    }

    /// The decoding key for a token with this `kid` and header algorithm.
    fn resolve(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey> {
        match self.lookup(kid) {
            Lookup::Found(k) => {
                check_key_matches(&k.jwk, alg)?;
                Ok(k.key.clone())
            }
            Lookup::UnknownKid => Err(invalid_token(format!(
                "unknown key id `{}`: not in the issuer's JWKS (refetches are rate limited)",
                clip(kid.unwrap_or_default())
            ))),
            Lookup::KidRequired(n) => Err(invalid_token(format!(
                "the token has no `kid` header and the issuer's JWKS has {n} keys"
            ))),
            Lookup::Empty => Err(invalid_token("the issuer's JWKS has no usable keys")),
        }
    }
}

/// Rejects a JWK that is not meant for signatures with `alg`: its `use`,
/// `key_ops`, `alg` and key type (and curve) must all agree with the header.
fn check_key_matches(jwk: &Jwk, alg: Algorithm) -> Result<()> {
    let kid = clip(jwk.common.key_id.as_deref().unwrap_or("<none>"));
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err(invalid_token(format!("key `{kid}` is not a signature key")));
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err(invalid_token(format!(
            "key `{kid}` is not allowed to verify signatures"
        )));
    }
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg != KeyAlgorithm::from(alg)
    {
        return Err(invalid_token(format!(
            "key `{kid}` is for {key_alg}, but the token header says {alg:?}"
        )));
    }
    let matches = match (alg.family(), &jwk.algorithm) {
        (AlgorithmFamily::Rsa, AlgorithmParameters::RSA(_)) => true,
        (AlgorithmFamily::Ec, AlgorithmParameters::EllipticCurve(p)) => matches!(
            (alg, &p.curve),
            (Algorithm::ES256, EllipticCurve::P256) | (Algorithm::ES384, EllipticCurve::P384)
        ),
        (AlgorithmFamily::Ed, AlgorithmParameters::OctetKeyPair(p)) => {
            p.curve == EllipticCurve::Ed25519
        }
        (AlgorithmFamily::Hmac, AlgorithmParameters::OctetKey(_)) => true,
        _ => false,
    };
    if !matches {
        return Err(invalid_token(format!(
            "key `{kid}` has a key type that cannot verify {alg:?} signatures"
        )));
    }
    Ok(())
}

/// Shortens attacker-controlled text before it goes into an error message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// Timing knobs for a cache, in the verifier clock's seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    pub(crate) ttl_secs: u64,
    pub(crate) min_refresh_secs: u64,
}

impl CachePolicy {
    pub(crate) fn new(ttl: Duration, min_refresh: Duration) -> Self {
        Self {
            ttl_secs: ttl.as_secs(),
            min_refresh_secs: min_refresh.as_secs(),
        }
    }
}

#[derive(Default)]
struct CacheState {
    keys: Option<Arc<KeySet>>,
    fetched_at: u64,
    last_attempt: Option<u64>,
    generation: u64,
    last_error: Option<String>,
}

/// The cached keys of one JWKS source.
pub(crate) struct JwksCache {
    source: JwksSource,
    http: reqwest::Client,
    policy: CachePolicy,
    state: Mutex<CacheState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl JwksCache {
    pub(crate) fn new(source: JwksSource, http: reqwest::Client, policy: CachePolicy) -> Self {
        let mut state = CacheState::default();
        if let JwksSource::Inline(set) = &source {
            state.keys = Some(Arc::new(KeySet::from_jwk_set(set, "inline JWKS")));
        }
        Self {
            source,
            http,
            policy,
            state: Mutex::new(state),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The key that should verify a token with this `kid` and algorithm,
    /// loading or refreshing the set as the module rules allow.
    pub(crate) async fn decoding_key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: u64,
    ) -> Result<DecodingKey> {
        let (keys, generation, stale) = {
            let st = self.state.lock();
            let stale = now.saturating_sub(st.fetched_at) >= self.policy.ttl_secs;
            (st.keys.clone(), st.generation, stale)
        };
        if let Some(set) = &keys {
            let found = matches!(set.lookup(kid), Lookup::Found(_));
            let inline = matches!(self.source, JwksSource::Inline(_));
            if inline || (found && !stale) {
                return set.resolve(kid, alg);
            }
        }
        self.refresh(generation, now).await;
        let keys = self.state.lock().keys.clone();
        match keys {
            Some(set) => set.resolve(kid, alg),
            None => Err(self.unavailable_error()),
        }
    }

    /// Loads the keys now unless another caller already did since `seen_generation`
    /// or the rate limit forbids it. Errors are recorded, not returned.
    pub(crate) async fn refresh(&self, seen_generation: u64, now: u64) {
        if matches!(self.source, JwksSource::Inline(_)) {
            return;
        }
        let _guard = self.fetch_lock.lock().await;
        {
            let st = self.state.lock();
            if st.generation != seen_generation {
                return; // someone else attempted while we waited: share their outcome
            }
            if let Some(last) = st.last_attempt {
                let min_gap = if st.keys.is_some() {
                    self.policy.min_refresh_secs
                } else {
                    NO_KEYS_RETRY_SECS.min(self.policy.min_refresh_secs)
                };
                if now.saturating_sub(last) < min_gap {
                    return;
                }
            }
        }
        let outcome = self.load().await;
        let mut st = self.state.lock();
        st.generation += 1;
        st.last_attempt = Some(now);
        match outcome {
            Ok(set) => {
                st.keys = Some(Arc::new(set));
                st.fetched_at = now;
                st.last_error = None;
            }
            Err(e) => {
                tracing::warn!(
                    source = %self.source.describe(),
                    error = %e,
                    have_cached_keys = st.keys.is_some(),
                    "JWKS refresh failed"
                );
                st.last_error = Some(e);
            }
        }
    }

    /// The current generation counter, for [`Self::refresh`].
    pub(crate) fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Whether keys are loaded.
    pub(crate) fn has_keys(&self) -> bool {
        self.state.lock().keys.is_some()
    }

    /// The error reported when no keys could ever be loaded.
    pub(crate) fn unavailable_error(&self) -> Error {
        let why = self
            .state
            .lock()
            .last_error
            .clone()
            .unwrap_or_else(|| "not loaded yet".into());
        Error::new(
            ErrorCode::ExternalServiceError,
            format!(
                "could not load the JWKS from {}: {why}",
                self.source.describe()
            ),
        )
    }

    async fn load(&self) -> std::result::Result<KeySet, String> {
        let source = self.source.describe();
        let bytes = match &self.source {
            JwksSource::Inline(set) => return Ok(KeySet::from_jwk_set(set, &source)),
            JwksSource::Url(url) => fetch_url(&self.http, url).await?,
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("cannot read file: {e}"))?;
                if bytes.len() > MAX_JWKS_BYTES {
                    return Err(format!("file is larger than {MAX_JWKS_BYTES} bytes"));
                }
                bytes
            }
        };
        KeySet::parse(&bytes, &source)
    }
}

async fn fetch_url(http: &reqwest::Client, url: &str) -> std::result::Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
    {
        return Err(format!("response is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading body: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("response is larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

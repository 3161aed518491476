//! Token verification: from a compact JWS to a verified [`Identity`].
//!
//! [`Verifier::verify`] does, in order:
//! 1. split the token and decode the (unverified) header and claims;
//! 2. reject `alg: none`, unknown algorithms and `crit` headers;
//! 3. pick the provider(s) by the unverified `iss` (an unknown issuer fails);
//! 4. check the header `alg` against the provider's allowlist;
//! 5. find the key by `kid` in the provider's cached JWKS (a `kid` is required
//!    when the set has more than one key) and check that the key's `use`,
//!    `alg` and type fit the header algorithm;
//! 6. verify the signature;
//! 7. validate `iss` (exact), `sub`, `exp` (required), `nbf`, `iat` and, when
//!    configured, `aud`, with [`VerifierOptions::leeway_secs`] against the
//!    injected [`Clock`].
//!
//! Failures are `INVALID_TOKEN` errors whose message says why. The one
//! exception is a JWKS that could never be loaded (no cached keys at all),
//! which is `EXTERNAL_SERVICE_ERROR`: the token may be fine, the issuer is not
//! reachable.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use errors::{Error, Result};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::config::{JwksSource, ProviderConfig};
use crate::identity::{Identity, numeric_date};
use crate::invalid_token;
use crate::jwks::{CachePolicy, JwksCache, clip};

/// The current Unix time in seconds. Injected so tests control time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A [`Clock`] reading the system time.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// Largest token accepted, as a cheap guard against oversized input.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Tuning of a [`Verifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierOptions {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (default 30).
    pub leeway_secs: u64,
    /// Minimum time between two JWKS refetches of one source caused by an
    /// unknown `kid` or an expired cache (default 30 s).
    pub jwks_refresh_min_interval: Duration,
    /// How long fetched keys are used before they are refreshed (default 10 min).
    pub jwks_ttl: Duration,
    /// Timeout of one JWKS HTTP request (default 10 s).
    pub http_timeout: Duration,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        Self {
            leeway_secs: 30,
            jwks_refresh_min_interval: Duration::from_secs(30),
            jwks_ttl: Duration::from_secs(600),
            http_timeout: Duration::from_secs(10),
        }
    }
}

struct Provider {
    config: ProviderConfig,
    cache: Arc<JwksCache>,
}

struct Inner {
    providers: Vec<Provider>,
    caches: Vec<Arc<JwksCache>>,
    options: VerifierOptions,
    clock: Clock,
}

/// Verifies tokens of the configured providers. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier using the system clock.
    pub fn new(providers: Vec<ProviderConfig>, options: VerifierOptions) -> Result<Self> {
        Self::with_clock(providers, options, system_clock())
    }

    /// A verifier reading the time from `clock` (Unix seconds).
    ///
    /// Fails on an empty issuer or an empty algorithm list. Providers with the
    /// same JWKS source share one key cache.
    pub fn with_clock(
        providers: Vec<ProviderConfig>,
        options: VerifierOptions,
        clock: Clock,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(options.http_timeout)
            .connect_timeout(options.http_timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("connvo-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the JWKS HTTP client: {e}")))?;
        let policy = CachePolicy::new(options.jwks_ttl, options.jwks_refresh_min_interval);
        let mut caches: Vec<Arc<JwksCache>> = Vec::new();
        let mut entries = Vec::with_capacity(providers.len());
        for config in providers {
            if config.issuer.trim().is_empty() {
                return Err(Error::bad_request("an auth provider has an empty issuer"));
            }
            if config.algorithms.is_empty() {
                return Err(Error::bad_request(format!(
                    "auth provider `{}` allows no algorithm",
                    config.issuer
                )));
            }
            if let JwksSource::Url(url) = &config.jwks
                && !is_safe_jwks_url(url)
            {
                tracing::warn!(
                    issuer = %config.issuer,
                    url = %url,
                    "JWKS URL is plain http on a non-loopback host; keys can be tampered with in transit"
                );
            }
            let cache = match caches.iter().find(|c| *c.source() == config.jwks) {
                Some(cache) => Arc::clone(cache),
                None => {
                    let cache = Arc::new(JwksCache::new(config.jwks.clone(), http.clone(), policy));
                    caches.push(Arc::clone(&cache));
                    cache
                }
            };
            entries.push(Provider { config, cache });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                providers: entries,
                caches,
                options,
                clock,
            }),
        })
    }

    /// The configured providers, in order.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.inner.providers.iter().map(|p| &p.config)
    }

    /// The configured issuers, in order.
    pub fn issuers(&self) -> Vec<&str> {
        self.providers().map(|p| p.issuer.as_str()).collect()
    }

    /// Whether no provider is configured (every token is then rejected).
    pub fn is_empty(&self) -> bool {
        self.inner.providers.is_empty()
    }

    /// The options the verifier was built with.
    pub fn options(&self) -> &VerifierOptions {
        &self.inner.options
    }

    /// The verifier's current time in Unix seconds.
    pub fn now_secs(&self) -> u64 {
        (self.inner.clock)()
    }

    /// Loads every JWKS that is not loaded yet (e.g. at startup), so the first
    /// verification does not wait for a fetch. Returns the first failure; keys
    /// that did load stay cached.
    pub async fn prefetch(&self) -> Result<()> {
        let now = self.now_secs();
        let mut first_error = None;
        for cache in &self.inner.caches {
            if cache.has_keys() {
                continue;
            }
            cache.refresh(cache.generation(), now).await;
            if !cache.has_keys() && first_error.is_none() {
                first_error = Some(cache.unavailable_error());
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Verifies `token` (a compact JWS, without any `Bearer ` prefix) and
    /// returns the identity it proves.
    pub async fn verify(&self, token: &str) -> Result<Identity> {
        let token = token.trim();
        let parts = split_token(token)?;
        let header = decode_json_part(parts.header, "header")?;
        let alg = header_algorithm(&header)?;
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(invalid_token("the `kid` header is not a string")),
        };
        let unverified = decode_json_part(parts.claims, "claims")?;
        let issuer = match unverified.get("iss") {
            Some(Value::String(iss)) => iss.as_str(),
            Some(_) => return Err(invalid_token("the `iss` claim is not a string")),
            None => return Err(invalid_token("the token has no `iss` claim")),
        };
        let candidates: Vec<&Provider> = self
            .inner
            .providers
            .iter()
            .filter(|p| p.config.issuer == issuer)
            .collect();
        if candidates.is_empty() {
            return Err(invalid_token(format!(
                "untrusted issuer `{}`",
                clip(issuer)
            )));
        }
        let mut first_error = None;
        for provider in candidates {
            match self.verify_with(provider, token, alg, kid).await {
                Ok(identity) => return Ok(identity),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| invalid_token("no provider accepted the token")))
    }

    async fn verify_with(
        &self,
        provider: &Provider,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Identity> {
        let config = &provider.config;
        if !config.algorithms.contains(&alg) {
            let allowed: Vec<String> = config.algorithms.iter().map(|a| format!("{a:?}")).collect();
            return Err(invalid_token(format!(
                "algorithm {alg:?} is not allowed for issuer `{}` (allowed: {})",
                config.issuer,
                allowed.join(", ")
            )));
        }
        let key = provider
            .cache
            .decoding_key(kid, alg, self.now_secs())
            .await?;

        // The library only checks the signature here; claims are checked below
        // against the injected clock with our own messages.
        let mut validation = Validation::new(alg);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| signature_error(&e))?;
        let claims = data.claims;
        self.check_claims(config, &claims)?;
        Ok(Identity::from_claims(claims))
    }

    fn check_claims(&self, config: &ProviderConfig, claims: &Map<String, Value>) -> Result<()> {
        let now = self.now_secs();
        let leeway = self.inner.options.leeway_secs;

        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == config.issuer => {}
            _ => {
                return Err(invalid_token(format!(
                    "wrong issuer (expected `{}`)",
                    config.issuer
                )));
            }
        }
        match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => {}
            Some(Value::String(_)) => return Err(invalid_token("the `sub` claim is empty")),
            Some(_) => return Err(invalid_token("the `sub` claim is not a string")),
            None => return Err(invalid_token("the token has no `sub` claim")),
        }

        let exp = time_claim(claims, "exp")?
            .ok_or_else(|| invalid_token("the token has no `exp` claim (an expiry is required)"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(invalid_token(format!(
                "the token expired at {exp} (now {now}, leeway {leeway} s)"
            )));
        }
        if let Some(nbf) = time_claim(claims, "nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(invalid_token(format!(
                "the token is not valid yet (nbf {nbf}, now {now}, leeway {leeway} s)"
            )));
        }
        if let Some(iat) = time_claim(claims, "iat")?
            && iat > now.saturating_add(leeway)
        {
            return Err(invalid_token(format!(
                "the token was issued in the future (iat {iat}, now {now}, leeway {leeway} s)"
            )));
        }

        if let Some(expected) = &config.audience {
            let ok = match claims.get("aud") {
                None | Some(Value::Null) => {
                    return Err(invalid_token(format!(
                        "the token has no `aud` claim; issuer `{}` requires audience `{expected}`",
                        config.issuer
                    )));
                }
                Some(Value::String(aud)) => aud == expected,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
                Some(_) => {
                    return Err(invalid_token("the `aud` claim is not a string or a list"));
                }
            };
            if !ok {
                return Err(invalid_token(format!(
                    "wrong audience (expected `{expected}`, token has {})",
                    clip(&claims.get("aud").map(Value::to_string).unwrap_or_default())
                )));
            }
        }
        Ok(())
    }
}

/// `https://` anything, or `http://` on a loopback host (local fakes and sidecars).
fn is_safe_jwks_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return true;
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .map_or(host, |h| h.trim_start_matches('['))
    } else {
        host.split(':').next().unwrap_or(host)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

struct TokenParts<'a> {
    header: &'a str,
    claims: &'a str,
}

fn split_token(token: &str) -> Result<TokenParts<'_>> {
    if token.is_empty() {
        return Err(invalid_token("the token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid_token(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [header, claims, _signature] => Ok(TokenParts { header, claims }),
        [_, _, _, _, _] => Err(invalid_token("encrypted tokens (JWE) are not supported")),
        _ => Err(invalid_token(
            "malformed token: expected three dot-separated parts",
        )),
    }
}

fn decode_json_part(part: &str, what: &str) -> Result<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| invalid_token(format!("malformed token: the {what} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid_token(format!(
            "malformed token: the {what} is not a JSON object"
        ))),
    }
}

fn header_algorithm(header: &Map<String, Value>) -> Result<Algorithm> {
    let name = match header.get("alg") {
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(invalid_token("the `alg` header is not a string")),
        None => return Err(invalid_token("the token header has no `alg`")),
    };
    if name.eq_ignore_ascii_case("none") {
        return Err(invalid_token(
            "algorithm `none` is not allowed (unsigned token)",
        ));
    }
    if header.contains_key("crit") {
        return Err(invalid_token(
            "critical header extensions (`crit`) are not supported",
        ));
    }
    Algorithm::from_str(name)
        .map_err(|_| invalid_token(format!("unsupported algorithm `{}`", clip(name))))
}

/// Reads a NumericDate claim; `Ok(None)` when absent, an error when mistyped.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => numeric_date(value).map(Some).ok_or_else(|| {
            invalid_token(format!("the `{name}` claim is not a non-negative number"))
        }),
    }
}

fn signature_error(e: &jsonwebtoken::errors::Error) -> Error {
    match e.kind() {
        ErrorKind::InvalidSignature => invalid_token("bad signature"),
        ErrorKind::Base64(_) => invalid_token("malformed token: the signature is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            invalid_token("malformed token: the header or claims are not valid JSON")
        }
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => {
            invalid_token("the issuer's key cannot verify this token (unusable key)")
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            invalid_token("the algorithm does not fit the issuer's key")
        }
        _ => invalid_token("signature verification failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_jwks_is_only_safe_on_loopback() {
        assert!(is_safe_jwks_url("https://api.workos.com/sso/jwks/c"));
        assert!(is_safe_jwks_url("http://127.0.0.1:8080/jwks"));
        assert!(is_safe_jwks_url("http://localhost/jwks"));
        assert!(is_safe_jwks_url("http://[::1]:9/jwks"));
        assert!(!is_safe_jwks_url("http://example.com/jwks"));
        assert!(!is_safe_jwks_url("http://127.0.0.1.evil.test/jwks"));
        assert!(!is_safe_jwks_url("http://localhost@evil.test/jwks"));
    }
}

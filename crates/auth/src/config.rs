//! Trusted token issuers ("auth providers") and how to configure them.
//!
//! A [`ProviderConfig`] names one issuer (`iss`), the source of its public keys
//! ([`JwksSource`]), an optional required audience and the allowed signature
//! algorithms. Providers come from:
//!
//! - the CLI form `issuer=ISS,jwks=URL_OR_FILE[,audience=AUD][,algorithms=RS256|ES256]`
//!   ([`ProviderConfig::parse`]);
//! - the environment form, several CLI forms joined with `;`
//!   ([`parse_providers_env`]);
//! - the WorkOS AuthKit preset ([`workos_providers`]);
//! - the local development key ([`crate::DevKeys::provider`]).

use std::path::PathBuf;
use std::str::FromStr;

use errors::{Error, ErrorCode, Result};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;

/// The WorkOS API base URL used when none is configured.
pub const DEFAULT_WORKOS_API_BASE: &str = "https://api.workos.com";

/// The issuer WorkOS AuthKit puts in older environments' access tokens.
const WORKOS_ISSUER: &str = "https://api.workos.com/";

/// Where a provider's public keys (a JWK Set) come from.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    /// Fetched over HTTP(S) and cached; refetched after the TTL or on an unknown `kid`.
    Url(String),
    /// Read from a local JSON file; re-read under the same rules as a URL.
    File(PathBuf),
    /// A fixed key set (never refetched), e.g. the development key.
    Inline(JwkSet),
}

impl JwksSource {
    /// A short description for logs and error messages (never key material).
    pub fn describe(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::File(path) => path.display().to_string(),
            Self::Inline(set) => format!("inline JWKS ({} keys)", set.keys.len()),
        }
    }

    /// Classifies a CLI value: `http://` or `https://` is a URL, anything else a file path.
    pub fn from_spec(value: &str) -> Self {
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Self::Url(value.to_owned())
        } else {
            Self::File(PathBuf::from(value))
        }
    }
}

/// One trusted token issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// The exact `iss` claim value tokens of this provider carry.
    pub issuer: String,
    /// Where the provider's public keys come from.
    pub jwks: JwksSource,
    /// When set, tokens must carry this value in `aud` (string or array).
    /// When unset, `aud` is not checked (WorkOS AuthKit tokens have none).
    pub audience: Option<String>,
    /// The signature algorithms accepted for this provider (see [`Self::DEFAULT_ALGORITHMS`]).
    pub algorithms: Vec<Algorithm>,
}

impl ProviderConfig {
    /// The algorithms a provider accepts unless configured otherwise.
    pub const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

    /// A provider with no audience requirement and the default algorithms.
    pub fn new(issuer: impl Into<String>, jwks: JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            jwks,
            audience: None,
            algorithms: Self::DEFAULT_ALGORITHMS.to_vec(),
        }
    }

    /// Sets the required audience.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Replaces the allowed algorithms.
    pub fn with_algorithms(mut self, algorithms: Vec<Algorithm>) -> Self {
        self.algorithms = algorithms;
        self
    }

    /// Parses the CLI form `issuer=ISS,jwks=URL_OR_FILE[,audience=AUD][,algorithms=A|B]`.
    ///
    /// A `jwks` value starting with `http://` or `https://` is a URL, anything
    /// else a file path. `algorithms` is a `|`-separated list (default
    /// `RS256|ES256`). Keys may appear in any order, each at most once.
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(parse_error(spec, "the spec is empty"));
        }
        let mut issuer = None;
        let mut jwks = None;
        let mut audience = None;
        let mut algorithms = None;
        for part in spec.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(parse_error(
                    spec,
                    &format!("`{part}` is not of the form key=value"),
                ));
            };
            let key = key.trim();
            let value = value.trim();
            if value.is_empty() {
                return Err(parse_error(spec, &format!("`{key}` has an empty value")));
            }
            let slot = match key {
                "issuer" | "iss" => &mut issuer,
                "jwks" => &mut jwks,
                "audience" | "aud" => &mut audience,
                "algorithms" | "algs" => &mut algorithms,
                other => {
                    return Err(parse_error(
                        spec,
                        &format!(
                            "unknown key `{other}` (expected issuer, jwks, audience or algorithms)"
                        ),
                    ));
                }
            };
            if slot.is_some() {
                return Err(parse_error(
                    spec,
                    &format!("`{key}` is given more than once"),
                ));
            }
            *slot = Some(value.to_owned());
        }
        let issuer = issuer.ok_or_else(|| parse_error(spec, "missing `issuer=`"))?;
        let jwks = jwks.ok_or_else(|| parse_error(spec, "missing `jwks=`"))?;
        let algorithms = match algorithms {
            None => Self::DEFAULT_ALGORITHMS.to_vec(),
            Some(list) => parse_algorithms(&list).map_err(|e| parse_error(spec, &e))?,
        };
        Ok(Self {
            issuer,
            jwks: JwksSource::from_spec(&jwks),
            audience,
            algorithms,
        })
    }
}

/// Parses the environment form: provider specs separated by `;` (empty entries are skipped).
pub fn parse_providers_env(s: &str) -> Result<Vec<ProviderConfig>> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(ProviderConfig::parse)
        .collect()
}

/// The WorkOS AuthKit preset, as the original backend's auth config had it.
///
/// Two providers share one JWKS, `{api_base}/sso/jwks/{client_id}` (cached
/// once): issuer `https://api.workos.com/` and issuer
/// `https://api.workos.com/user_management/{client_id}`. Neither requires an
/// audience (AuthKit access tokens carry no `aud`), and only RS256 is allowed.
/// `api_base` (normally [`DEFAULT_WORKOS_API_BASE`]) only moves the JWKS URL,
/// so tests can point it at a local fake; the issuers stay the real ones.
/// `client_id` must not be empty (WorkOS rejects such a JWKS URL).
pub fn workos_providers(client_id: &str, api_base: &str) -> Vec<ProviderConfig> {
    let base = api_base.trim().trim_end_matches('/');
    let base = if base.is_empty() {
        DEFAULT_WORKOS_API_BASE
    } else {
        base
    };
    let client_id = client_id.trim();
    let jwks = JwksSource::Url(format!("{base}/sso/jwks/{client_id}"));
    [
        WORKOS_ISSUER.to_owned(),
        format!("https://api.workos.com/user_management/{client_id}"),
    ]
    .into_iter()
    .map(|issuer| ProviderConfig {
        issuer,
        jwks: jwks.clone(),
        audience: None,
        algorithms: vec![Algorithm::RS256],
    })
    .collect()
}

fn parse_algorithms(list: &str) -> std::result::Result<Vec<Algorithm>, String> {
    let mut out = Vec::new();
    for name in list
        .split(['|', '+', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let alg = Algorithm::from_str(name).map_err(|_| format!("unknown algorithm `{name}`"))?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    if out.is_empty() {
        return Err("`algorithms` lists no algorithm".to_owned());
    }
    Ok(out)
}

fn parse_error(spec: &str, why: &str) -> Error {
    Error::new(
        ErrorCode::BadRequest,
        format!(
            "invalid auth provider spec `{spec}`: {why}; expected \
             issuer=ISS,jwks=URL_OR_FILE[,audience=AUD]"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_spec_parsing() {
        let p = ProviderConfig::parse(
            "issuer=https://issuer.example/,jwks=https://issuer.example/jwks.json,audience=my-app",
        )
        .expect("valid spec");
        assert_eq!(p.issuer, "https://issuer.example/");
        assert_eq!(
            p.jwks,
            JwksSource::Url("https://issuer.example/jwks.json".into())
        );
        assert_eq!(p.audience.as_deref(), Some("my-app"));
        assert_eq!(p.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);

        // Order does not matter; a non-URL jwks is a file; whitespace is trimmed.
        let p = ProviderConfig::parse(" jwks = /etc/keys/jwks.json , issuer = me ").expect("valid");
        assert_eq!(p.issuer, "me");
        assert_eq!(
            p.jwks,
            JwksSource::File(PathBuf::from("/etc/keys/jwks.json"))
        );
        assert_eq!(p.audience, None);

        // http:// is a URL too; a query string may contain '='.
        let p = ProviderConfig::parse("issuer=a,jwks=http://127.0.0.1:9/jwks?x=1").expect("valid");
        assert_eq!(
            p.jwks,
            JwksSource::Url("http://127.0.0.1:9/jwks?x=1".into())
        );

        let p = ProviderConfig::parse("issuer=a,jwks=f.json,algorithms=ES256|RS256|ES256")
            .expect("valid");
        assert_eq!(p.algorithms, vec![Algorithm::ES256, Algorithm::RS256]);
    }

    #[test]
    fn provider_spec_parsing_rejects_bad_specs() {
        for (spec, needle) in [
            ("", "empty"),
            ("issuer=a", "missing `jwks=`"),
            ("jwks=https://x/jwks", "missing `issuer=`"),
            ("issuer=a,jwks", "key=value"),
            ("issuer=a,jwks=", "empty value"),
            ("issuer=a,jwks=b,colour=red", "unknown key `colour`"),
            ("issuer=a,issuer=b,jwks=c", "more than once"),
            (
                "issuer=a,jwks=b,algorithms=none",
                "unknown algorithm `none`",
            ),
            ("issuer=a,jwks=b,algorithms=||", "no algorithm"),
        ] {
            let err = ProviderConfig::parse(spec).expect_err(spec);
            assert_eq!(err.code(), ErrorCode::BadRequest);
            assert!(err.message().contains(needle), "{spec}: {}", err.message());
        }
    }

    #[test]
    fn provider_env_parsing_splits_on_semicolons() {
        let list = parse_providers_env(
            "issuer=a,jwks=https://a/jwks; issuer=b,jwks=/tmp/b.json,audience=x ;;",
        )
        .expect("valid env");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].issuer, "a");
        assert_eq!(list[1].issuer, "b");
        assert_eq!(list[1].audience.as_deref(), Some("x"));
        assert!(parse_providers_env("").expect("empty is fine").is_empty());
        let err = parse_providers_env("issuer=a,jwks=b;issuer=c").expect_err("second is bad");
        assert!(err.message().contains("issuer=c"), "{}", err.message());
    }

    #[test]
    fn workos_preset_builds_expected_issuers_and_jwks_url() {
        let providers = workos_providers("client_123", DEFAULT_WORKOS_API_BASE);
        let issuers: Vec<&str> = providers.iter().map(|p| p.issuer.as_str()).collect();
        assert_eq!(
            issuers,
            [
                "https://api.workos.com/",
                "https://api.workos.com/user_management/client_123"
            ]
        );
        for p in &providers {
            assert_eq!(
                p.jwks,
                JwksSource::Url("https://api.workos.com/sso/jwks/client_123".into())
            );
            assert_eq!(p.audience, None);
            assert_eq!(p.algorithms, vec![Algorithm::RS256]);
        }
        let local = workos_providers("client_123", "http://127.0.0.1:4000/");
        assert_eq!(
            local[0].jwks,
            JwksSource::Url("http://127.0.0.1:4000/sso/jwks/client_123".into())
        );
        assert_eq!(
            local[1].issuer,
            "https://api.workos.com/user_management/client_123"
        );
    }
}

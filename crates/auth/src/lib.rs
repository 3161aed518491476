//! Verified identity for Connvo Server.
//!
//! This crate turns a bearer token (a JWT sent by a Convex client in
//! `Authenticate{tokenType:"User"}` or as `Authorization: Bearer …`) into a
//! verified [`Identity`], or into an [`errors::Error`] with code
//! [`ErrorCode::InvalidToken`] whose message
//! says *why* the token was rejected (expired, wrong issuer, unknown `kid`, …).
//! Key material never appears in error messages or `Debug` output.
//!
//! # Map
//!
//! - [`config`]: [`ProviderConfig`] (one trusted issuer and where its keys come
//!   from), the CLI/env spec parsers and the WorkOS AuthKit preset
//!   ([`workos_providers`]).
//! - [`verifier`]: the [`Verifier`], which picks the provider by the token's
//!   `iss`, finds the key in a cached JWKS (refetched on an unknown `kid`, rate
//!   limited, one fetch shared by concurrent callers) and validates signature
//!   and claims against an injectable [`Clock`].
//! - [`identity`]: the [`Identity`] handed to functions (`ctx.auth.getUserIdentity()`).
//! - [`dev`]: [`DevKeys`], a persistent local ES256 key for minting development
//!   tokens (issuer [`DEV_ISSUER`]).
//!
//! # Security rules
//!
//! - The algorithm allowlist is per provider; `alg: none` is never accepted, and
//!   the key type must match the header algorithm's family, so the classic
//!   HS256-with-the-RSA-public-key confusion cannot verify.
//! - Keys come only from the configured JWKS source; `jku`, `x5u` and `jwk`
//!   token headers are ignored, and a token with `crit` headers is rejected.
//! - `exp` is required; `exp`, `nbf` and `iat` are checked with a small leeway
//!   (default 30 s); `iss` must match exactly; `aud` is checked when the
//!   provider configures an audience.

pub mod config;
pub mod dev;
pub mod identity;
mod jwks;
pub mod verifier;

pub use config::{
    DEFAULT_WORKOS_API_BASE, JwksSource, ProviderConfig, parse_providers_env, workos_providers,
};
pub use dev::{DEV_AUDIENCE, DEV_ISSUER, DevKeys, DevTokenClaims};
pub use identity::Identity;
pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
pub use verifier::{Clock, Verifier, VerifierOptions, system_clock};

use errors::{Error, ErrorCode};

/// An `INVALID_TOKEN` error with the reason in its message.
pub(crate) fn invalid_token(reason: impl Into<String>) -> Error {
    Error::new(
        ErrorCode::InvalidToken,
        format!("invalid token: {}", reason.into()),
    )
}

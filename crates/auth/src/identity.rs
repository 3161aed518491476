//! The verified identity of a caller, built from a token's claims.
//!
//! The shape follows Convex's `UserIdentity` (`tokenIdentifier`, `subject`,
//! `issuer` plus the OpenID standard claims) with the WorkOS AuthKit claims
//! (`org_id`, `role`, `permissions`, `sid`) lifted into fields. Every raw claim
//! is kept in [`Identity::claims`] for custom claims.

use serde::Serialize;
use serde_json::{Map, Value};

/// A verified caller identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    /// The `sub` claim: the user id at the issuer (WorkOS: `user_01…`).
    pub subject: String,
    /// The `iss` claim, exactly as in the token.
    pub issuer: String,
    /// `"{issuer}|{subject}"`, Convex's stable key for a user across providers.
    pub token_identifier: String,
    /// The `email` claim, if present.
    pub email: Option<String>,
    /// The `email_verified` claim (a boolean, or the strings `"true"`/`"false"`).
    pub email_verified: Option<bool>,
    /// The `name` claim, if present.
    pub name: Option<String>,
    /// The `given_name` claim, if present.
    pub given_name: Option<String>,
    /// The `family_name` claim, if present.
    pub family_name: Option<String>,
    /// The `picture` claim, if present.
    pub picture: Option<String>,
    /// The WorkOS `org_id` claim: the organization selected at sign-in.
    pub org_id: Option<String>,
    /// The WorkOS `role` claim: the role slug in the selected organization
    /// (falls back to an `org_role` claim, which the original test identities used).
    pub role: Option<String>,
    /// The WorkOS `permissions` claim (string entries only; empty when absent).
    pub permissions: Vec<String>,
    /// The `sid` claim: the identity provider's session id.
    pub session_id: Option<String>,
    /// The `exp` claim in Unix seconds.
    pub expires_at: Option<u64>,
    /// All claims of the token, unmodified.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// Builds an identity from already verified claims. Missing or mistyped
    /// optional claims become `None`; `iss` and `sub` default to empty strings
    /// (the verifier rejects tokens without them before calling this).
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        let string = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_owned);
        let subject = string("sub").unwrap_or_default();
        let issuer = string("iss").unwrap_or_default();
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        let permissions = match claims.get("permissions") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let expires_at = claims.get("exp").and_then(numeric_date);
        Self {
            token_identifier: format!("{issuer}|{subject}"),
            subject,
            issuer,
            email: string("email"),
            email_verified,
            name: string("name"),
            given_name: string("given_name"),
            family_name: string("family_name"),
            picture: string("picture"),
            org_id: string("org_id"),
            role: string("role").or_else(|| string("org_role")),
            permissions,
            session_id: string("sid"),
            expires_at,
            claims,
        }
    }

    /// Whether the token's `exp` has passed at `now_secs` (no leeway). An
    /// identity without `exp` never expires.
    pub fn is_expired(&self, now_secs: u64) -> bool {
        self.expires_at.is_some_and(|exp| now_secs >= exp)
    }

    /// The identity as Convex's `ctx.auth.getUserIdentity()` returns it:
    /// `tokenIdentifier`, `subject`, `issuer`, the OpenID standard claims under
    /// their Convex names (`given_name` → `givenName`, `picture` → `pictureUrl`,
    /// `email_verified` → `emailVerified`, …) and every other claim under its
    /// own name, except the registered `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`
    /// and `jti`.
    pub fn to_user_identity_json(&self) -> Value {
        const RENAMED: [(&str, &str); 15] = [
            ("name", "name"),
            ("given_name", "givenName"),
            ("family_name", "familyName"),
            ("nickname", "nickname"),
            ("preferred_username", "preferredUsername"),
            ("profile", "profileUrl"),
            ("picture", "pictureUrl"),
            ("email", "email"),
            ("email_verified", "emailVerified"),
            ("gender", "gender"),
            ("birthdate", "birthday"),
            ("zoneinfo", "timezone"),
            ("locale", "language"),
            ("phone_number", "phoneNumber"),
            ("phone_number_verified", "phoneNumberVerified"),
        ];
        const DROPPED: [&str; 7] = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"];
        let mut out = Map::new();
        out.insert(
            "tokenIdentifier".into(),
            self.token_identifier.clone().into(),
        );
        out.insert("subject".into(), self.subject.clone().into());
        out.insert("issuer".into(), self.issuer.clone().into());
        for (key, value) in &self.claims {
            if DROPPED.contains(&key.as_str()) {
                continue;
            }
            let name = match key.as_str() {
                "updated_at" => "updatedAt",
                other => RENAMED
                    .iter()
                    .find(|(c, _)| *c == other)
                    .map_or(other, |(_, n)| n),
            };
            let value = match (name, value) {
                ("emailVerified" | "phoneNumberVerified", _) => match value {
                    Value::String(s) => Value::Bool(s.eq_ignore_ascii_case("true")),
                    other => other.clone(),
                },
                ("updatedAt", Value::Number(n)) => Value::String(n.to_string()),
                _ => value.clone(),
            };
            if !out.contains_key(name) {
                out.insert(name.to_owned(), value);
            }
        }
        Value::Object(out)
    }

    /// Whether the `permissions` claim contains `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// Reads a JWT NumericDate (seconds, possibly fractional) as whole seconds,
/// rounding down. Negative, non-finite and non-numeric values give `None`.
pub(crate) fn numeric_date(value: &Value) -> Option<u64> {
    let n = value.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 {
        // Truncation towards zero is the intended rounding for a non-negative value.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_from_workos_claims() {
        let Value::Object(claims) = json!({
            "iss": "https://api.workos.com/user_management/client_1",
            "sub": "user_01",
            "sid": "session_01",
            "org_id": "org_01",
            "role": "admin",
            "permissions": ["meetings:create", 7, "notes:read"],
            "email_verified": "true",
            "exp": 1700000300.5,
            "iat": 1700000000
        }) else {
            unreachable!()
        };
        let id = Identity::from_claims(claims);
        assert_eq!(
            id.token_identifier,
            "https://api.workos.com/user_management/client_1|user_01"
        );
        assert_eq!(id.session_id.as_deref(), Some("session_01"));
        assert_eq!(id.org_id.as_deref(), Some("org_01"));
        assert_eq!(id.role.as_deref(), Some("admin"));
        assert_eq!(id.permissions, ["meetings:create", "notes:read"]);
        assert!(id.has_permission("notes:read"));
        assert_eq!(id.email_verified, Some(true));
        assert_eq!(id.email, None);
        assert_eq!(id.expires_at, Some(1_700_000_300));
        assert!(!id.is_expired(1_700_000_299));
        assert!(id.is_expired(1_700_000_300));
        assert_eq!(id.claims["iat"], 1_700_000_000);

        let convex = id.to_user_identity_json();
        assert_eq!(convex["tokenIdentifier"], id.token_identifier);
        assert_eq!(convex["subject"], "user_01");
        assert_eq!(convex["emailVerified"], true);
        assert_eq!(convex["org_id"], "org_01");
        assert_eq!(convex["sid"], "session_01");
        assert!(convex.get("exp").is_none() && convex.get("iss").is_none());
    }

    #[test]
    fn role_falls_back_to_org_role() {
        let Value::Object(claims) = json!({"iss": "i", "sub": "s", "org_role": "admin",
            "given_name": "Ada", "picture": "https://p/x.png"})
        else {
            unreachable!()
        };
        let id = Identity::from_claims(claims);
        assert_eq!(id.role.as_deref(), Some("admin"));
        let convex = id.to_user_identity_json();
        assert_eq!(convex["givenName"], "Ada");
        assert_eq!(convex["pictureUrl"], "https://p/x.png");
    }
}

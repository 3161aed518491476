//! Tests of the persistent development key and dev tokens.

mod common;

use auth::{Algorithm, DEV_AUDIENCE, DEV_ISSUER, DevKeys, DevTokenClaims, JwksSource};
use common::*;
use errors::ErrorCode;
use serde_json::json;

#[tokio::test]
async fn dev_keys_create_and_mint_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = DevKeys::load_or_create(dir.path()).expect("create");
    assert_eq!(keys.issuer(), DEV_ISSUER);
    assert_eq!(DEV_ISSUER, "connvo-dev");
    assert_eq!(keys.path(), dir.path().join("dev-auth").join("key.pk8"));
    assert!(keys.path().is_file());

    let jwks = serde_json::to_value(keys.jwks()).expect("jwks json");
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], keys.kid());
    assert_eq!(jwk["x"].as_str().map(str::len), Some(43));
    assert_eq!(jwk["y"].as_str().map(str::len), Some(43));
    assert!(jwk.get("d").is_none(), "no private material in the JWKS");
    assert!(!format!("{keys:?}").contains(jwk["x"].as_str().unwrap_or("?")));

    let provider = keys.provider();
    assert_eq!(provider.issuer, DEV_ISSUER);
    assert_eq!(provider.audience.as_deref(), Some(DEV_AUDIENCE));
    assert_eq!(provider.algorithms, vec![Algorithm::ES256]);
    assert!(matches!(provider.jwks, JwksSource::Inline(_)));

    let claims = DevTokenClaims {
        subject: "dev|alice".into(),
        email: Some("alice@example.com".into()),
        name: Some("Alice".into()),
        org_id: Some("org_dev".into()),
        role: Some("admin".into()),
        ttl_secs: 600,
        extra: json!({"permissions": ["meetings:create"]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let token = keys.mint(claims, NOW).expect("mint");
    let (verifier, clock) = new_verifier(vec![provider]);
    let id = verifier.verify(&token).await.expect("dev token verifies");
    assert_eq!(id.subject, "dev|alice");
    assert_eq!(id.issuer, DEV_ISSUER);
    assert_eq!(id.token_identifier, "connvo-dev|dev|alice");
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.name.as_deref(), Some("Alice"));
    assert_eq!(id.org_id.as_deref(), Some("org_dev"));
    assert_eq!(id.role.as_deref(), Some("admin"));
    assert_eq!(id.permissions, ["meetings:create"]);
    assert_eq!(id.expires_at, Some(NOW + 600));
    for claim in ["iss", "aud", "sub", "iat", "nbf", "exp"] {
        assert!(id.claims.contains_key(claim), "missing {claim}");
    }
    assert_eq!(id.claims["aud"], DEV_AUDIENCE);

    clock.advance(600 + 30);
    let err = verifier.verify(&token).await.expect_err("expired");
    assert_eq!(err.code(), ErrorCode::InvalidToken);

    // Defaults and guards.
    assert_eq!(DevTokenClaims::new("x").ttl_secs, 3600);
    assert!(keys.mint(DevTokenClaims::new(""), NOW).is_err());
    let mut bad = DevTokenClaims::new("x");
    bad.extra.insert("iss".into(), json!("https://evil.test/"));
    assert!(keys.mint(bad, NOW).is_err());
}

#[tokio::test]
async fn dev_keys_reload_gives_same_kid_and_verifies_old_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = DevKeys::load_or_create(dir.path()).expect("create");
    let token = first
        .mint(DevTokenClaims::new("dev|bob"), NOW)
        .expect("mint");
    let kid = first.kid().to_owned();
    drop(first);

    let again = DevKeys::load_or_create(dir.path()).expect("reload");
    assert_eq!(again.kid(), kid);
    let (verifier, _clock) = new_verifier(vec![again.provider()]);
    let id = verifier
        .verify(&token)
        .await
        .expect("token minted before the reload");
    assert_eq!(id.subject, "dev|bob");

    // Another data dir has another key: its tokens do not verify here.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = DevKeys::load_or_create(other_dir.path()).expect("create other");
    assert_ne!(other.kid(), kid);
    let foreign = other
        .mint(DevTokenClaims::new("dev|mallory"), NOW)
        .expect("mint");
    let err = verifier
        .verify(&foreign)
        .await
        .expect_err("foreign dev key");
    assert!(
        err.message().contains("unknown key id"),
        "{}",
        err.message()
    );
}

#[cfg(unix)]
#[test]
fn dev_keys_file_permissions_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = DevKeys::load_or_create(dir.path()).expect("create");
    let mode = std::fs::metadata(keys.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(dir.path().join("dev-auth"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // No temp files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("dev-auth"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("key.pk8")]);

    // A key file with loose permissions is tightened on load.
    std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let reloaded = DevKeys::load_or_create(dir.path()).expect("reload");
    let mode = std::fs::metadata(reloaded.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn dev_keys_corrupt_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("dev-auth")).expect("mkdir");
    std::fs::write(dir.path().join("dev-auth/key.pk8"), b"not a key").expect("write");
    let err = DevKeys::load_or_create(dir.path()).expect_err("corrupt key");
    assert!(
        err.message().contains("not a P-256 PKCS#8 key"),
        "{}",
        err.message()
    );
}

#[test]
fn dev_keys_concurrent_creation_agrees_on_one_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let kids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    DevKeys::load_or_create(&path)
                        .expect("create")
                        .kid()
                        .to_owned()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(kids.windows(2).all(|w| w[0] == w[1]), "{kids:?}");
}

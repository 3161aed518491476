//! End-to-end tests of `Verifier` against a local fake JWKS server.

mod common;

use std::time::Duration;

use auth::{
    Algorithm, DEFAULT_WORKOS_API_BASE, JwksSource, ProviderConfig, VerifierOptions,
    workos_providers,
};
use common::*;
use errors::ErrorCode;
use serde_json::{Value, json};

const ISS: &str = "https://issuer.test/";

fn provider(url: &str) -> ProviderConfig {
    ProviderConfig::new(ISS, JwksSource::Url(url.to_owned()))
}

#[track_caller]
fn assert_rejected(result: errors::Result<auth::Identity>, needle: &str) {
    let err = result.expect_err("token must be rejected");
    assert_eq!(err.code(), ErrorCode::InvalidToken, "{err}");
    assert!(
        err.message().contains(needle),
        "expected `{needle}` in `{}`",
        err.message()
    );
}

#[tokio::test]
async fn accepts_valid_rs256_token_from_jwks_url() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let mut c = claims(ISS, "user_1");
    c["email"] = json!("ada@example.com");
    c["email_verified"] = json!(true);
    c["name"] = json!("Ada");
    c["custom"] = json!({"tier": "gold"});
    let id = verifier
        .verify(&rsa_a().sign(&c))
        .await
        .expect("valid token");
    assert_eq!(id.subject, "user_1");
    assert_eq!(id.issuer, ISS);
    assert_eq!(id.token_identifier, format!("{ISS}|user_1"));
    assert_eq!(id.email.as_deref(), Some("ada@example.com"));
    assert_eq!(id.email_verified, Some(true));
    assert_eq!(id.name.as_deref(), Some("Ada"));
    assert_eq!(id.expires_at, Some(NOW + 300));
    assert_eq!(id.claims["custom"]["tier"], "gold");
    // The second verification is served from the cache.
    verifier
        .verify(&rsa_a().sign(&c))
        .await
        .expect("valid token again");
    assert_eq!(fake.fetches(), 1);
}

#[tokio::test]
async fn accepts_valid_es256_token() {
    let ec = EcKey::generate("ec-1");
    let fake = FakeJwks::start(vec![rsa_a().jwk(), ec.jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let id = verifier
        .verify(&ec.sign(&claims(ISS, "user_ec")))
        .await
        .expect("valid ES256");
    assert_eq!(id.subject, "user_ec");
}

#[tokio::test]
async fn rejects_alg_none() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let input = signing_input(
        &json!({"alg": "none", "typ": "JWT", "kid": rsa_a().kid}),
        &claims(ISS, "user_1"),
    );
    assert_rejected(
        verifier.verify(&format!("{input}.")).await,
        "`none` is not allowed",
    );
    let input = signing_input(&json!({"alg": "None"}), &claims(ISS, "user_1"));
    assert_rejected(
        verifier.verify(&format!("{input}.")).await,
        "`none` is not allowed",
    );
    // Never even looked at the keys.
    assert_eq!(fake.fetches(), 0);
}

#[tokio::test]
async fn rejects_hs256_signed_with_rsa_public_key() {
    let key = rsa_a();
    let fake = FakeJwks::start(vec![key.jwk()]).await;
    let c = claims(ISS, "attacker");
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid});
    let secrets = [
        key.public_der(),
        key.jwk().to_string().into_bytes(),
        key.n.clone(),
    ];

    // Default allowlist (RS256, ES256): HS256 is not allowed at all.
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    for secret in &secrets {
        let forged = sign_hs256(secret, header.clone(), &c);
        assert_rejected(verifier.verify(&forged).await, "HS256 is not allowed");
    }

    // Even a provider that (wrongly) allows HS256 cannot verify it with an RSA key.
    let lax = provider(&fake.url()).with_algorithms(vec![Algorithm::RS256, Algorithm::HS256]);
    let (verifier, _clock) = new_verifier(vec![lax]);
    for secret in &secrets {
        let forged = sign_hs256(secret, header.clone(), &c);
        assert_rejected(
            verifier.verify(&forged).await,
            "key `sso_oidc_key_pair_A` is for RS256",
        );
    }
    // And a JWK without `alg` is still rejected by key type.
    let mut no_alg = key.jwk();
    no_alg.as_object_mut().expect("object").remove("alg");
    fake.set_keys(vec![no_alg]);
    let lax = provider(&fake.url()).with_algorithms(vec![Algorithm::RS256, Algorithm::HS256]);
    let (verifier, _clock) = new_verifier(vec![lax]);
    let forged = sign_hs256(&secrets[0], header, &c);
    assert_rejected(
        verifier.verify(&forged).await,
        "key type that cannot verify HS256",
    );
}

#[tokio::test]
async fn rejects_wrong_issuer() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let token = rsa_a().sign(&claims("https://evil.test/", "user_1"));
    assert_rejected(
        verifier.verify(&token).await,
        "untrusted issuer `https://evil.test/`",
    );
    // Exact match: a missing trailing slash is another issuer.
    let token = rsa_a().sign(&claims("https://issuer.test", "user_1"));
    assert_rejected(verifier.verify(&token).await, "untrusted issuer");
    let mut c = claims(ISS, "user_1");
    c.as_object_mut().expect("object").remove("iss");
    assert_rejected(verifier.verify(&rsa_a().sign(&c)).await, "no `iss` claim");
    assert_eq!(fake.fetches(), 0);
}

#[tokio::test]
async fn rejects_wrong_audience() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url()).with_audience("my-app")]);
    let with_aud = |aud: Value| {
        let mut c = claims(ISS, "user_1");
        c["aud"] = aud;
        rsa_a().sign(&c)
    };
    assert_rejected(
        verifier.verify(&with_aud(json!("other-app"))).await,
        "wrong audience",
    );
    assert_rejected(
        verifier.verify(&with_aud(json!(["a", "b"]))).await,
        "wrong audience",
    );
    assert_rejected(
        verifier.verify(&rsa_a().sign(&claims(ISS, "user_1"))).await,
        "no `aud`",
    );
    verifier
        .verify(&with_aud(json!("my-app")))
        .await
        .expect("right audience");
    verifier
        .verify(&with_aud(json!(["x", "my-app"])))
        .await
        .expect("audience in a list");

    // Without a configured audience an `aud` claim is tolerated.
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    verifier
        .verify(&with_aud(json!("anything")))
        .await
        .expect("aud not checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_triggers_one_rate_limited_refetch() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    fake.set_delay(Duration::from_millis(50));
    let (verifier, clock) = new_verifier(vec![provider(&fake.url())]);
    let good = rsa_a().sign(&claims(ISS, "user_1"));
    let unknown = rsa_b().sign(&claims(ISS, "user_1"));

    // Many concurrent first verifications share the first fetch.
    let results = futures_join(&verifier, &unknown, 32).await;
    for r in results {
        assert_rejected(r, "unknown key id `sso_oidc_key_pair_B`");
    }
    assert_eq!(fake.fetches(), 1, "concurrent callers must share one fetch");
    verifier.verify(&good).await.expect("known kid still fine");

    // Within the rate-limit window: no refetch at all.
    clock.advance(10);
    for r in futures_join(&verifier, &unknown, 32).await {
        assert_rejected(r, "unknown key id");
    }
    assert_eq!(fake.fetches(), 1, "refetch must be rate limited");

    // After the window: exactly one refetch, however many callers.
    clock.advance(25);
    for r in futures_join(&verifier, &unknown, 32).await {
        assert_rejected(r, "unknown key id");
    }
    assert_eq!(fake.fetches(), 2, "one refetch per window");
    for r in futures_join(&verifier, &unknown, 8).await {
        assert_rejected(r, "unknown key id");
    }
    assert_eq!(fake.fetches(), 2);
}

async fn futures_join(
    verifier: &auth::Verifier,
    token: &str,
    n: usize,
) -> Vec<errors::Result<auth::Identity>> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let v = verifier.clone();
        let t = token.to_owned();
        handles.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn key_rotation_new_kid_accepted_after_refetch() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, clock) = new_verifier(vec![provider(&fake.url())]);
    verifier
        .verify(&rsa_a().sign(&claims(ISS, "u")))
        .await
        .expect("old key");
    assert_eq!(fake.fetches(), 1);

    // The provider publishes key B next to A and starts signing with B.
    fake.set_keys(vec![rsa_a().jwk(), rsa_b().jwk()]);
    clock.advance(31);
    let fresh = json!({"iss": ISS, "sub": "u", "iat": NOW + 31, "exp": NOW + 331});
    verifier
        .verify(&rsa_b().sign(&fresh))
        .await
        .expect("new key after refetch");
    assert_eq!(fake.fetches(), 2);
    verifier
        .verify(&rsa_a().sign(&fresh))
        .await
        .expect("old key still listed");
    assert_eq!(fake.fetches(), 2);

    // A is retired; once the cache TTL passes, A is no longer accepted.
    fake.set_keys(vec![rsa_b().jwk()]);
    clock.advance(600);
    let later = json!({"iss": ISS, "sub": "u", "iat": NOW + 631, "exp": NOW + 931});
    assert_rejected(
        verifier.verify(&rsa_a().sign(&later)).await,
        "unknown key id",
    );
    assert_eq!(fake.fetches(), 3);
    verifier
        .verify(&rsa_b().sign(&later))
        .await
        .expect("B still fine");
    assert_eq!(fake.fetches(), 3);
}

#[tokio::test]
async fn expired_beyond_leeway_rejected_within_leeway_accepted() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, clock) = new_verifier(vec![provider(&fake.url())]);
    let token = rsa_a().sign(&claims(ISS, "u")); // exp = NOW + 300, leeway 30

    clock.set(NOW + 300 + 29);
    let id = verifier
        .verify(&token)
        .await
        .expect("expired but within leeway");
    assert!(id.is_expired(NOW + 300 + 29));
    clock.set(NOW + 300 + 30);
    assert_rejected(verifier.verify(&token).await, "expired at");
    clock.set(NOW + 10_000);
    assert_rejected(verifier.verify(&token).await, "expired at");

    let (strict, clock) = new_verifier_with(
        vec![provider(&fake.url())],
        VerifierOptions {
            leeway_secs: 0,
            ..Default::default()
        },
    );
    clock.set(NOW + 299);
    strict.verify(&token).await.expect("one second left");
    clock.set(NOW + 300);
    assert_rejected(strict.verify(&token).await, "expired at");
}

#[tokio::test]
async fn rejects_not_yet_valid_token() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let mut c = claims(ISS, "u");
    c["nbf"] = json!(NOW + 120);
    assert_rejected(verifier.verify(&rsa_a().sign(&c)).await, "not valid yet");
    c["nbf"] = json!(NOW + 20);
    verifier
        .verify(&rsa_a().sign(&c))
        .await
        .expect("nbf within leeway");

    let mut c = claims(ISS, "u");
    c["iat"] = json!(NOW + 3600);
    c["exp"] = json!(NOW + 7200);
    assert_rejected(
        verifier.verify(&rsa_a().sign(&c)).await,
        "issued in the future",
    );
}

#[tokio::test]
async fn rejects_bad_signature_tampered_payload() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let token = rsa_a().sign(&claims(ISS, "user_1"));
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = b64(claims(ISS, "admin").to_string().as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    assert_rejected(verifier.verify(&tampered).await, "bad signature");

    // Signed by a key the issuer never published under the published kid.
    let other = rsa_b().sign_with_header(
        json!({"alg": "RS256", "kid": rsa_a().kid}),
        &claims(ISS, "user_1"),
    );
    assert_rejected(verifier.verify(&other).await, "bad signature");

    assert_rejected(
        verifier.verify("not-a-token").await,
        "three dot-separated parts",
    );
    assert_rejected(verifier.verify("").await, "empty");
    assert_rejected(verifier.verify("a.b.c.d.e").await, "JWE");
}

#[tokio::test]
async fn rejects_validly_signed_token_without_exp() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let mut c = claims(ISS, "u");
    c.as_object_mut().expect("object").remove("exp");
    assert_rejected(verifier.verify(&rsa_a().sign(&c)).await, "no `exp` claim");
    c["exp"] = json!("tomorrow");
    assert_rejected(
        verifier.verify(&rsa_a().sign(&c)).await,
        "`exp` claim is not",
    );
    let mut c = claims(ISS, "u");
    c.as_object_mut().expect("object").remove("sub");
    assert_rejected(verifier.verify(&rsa_a().sign(&c)).await, "no `sub` claim");
}

#[tokio::test]
async fn requires_kid_when_jwks_has_several_keys() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, clock) = new_verifier(vec![provider(&fake.url())]);
    let no_kid = rsa_a().sign_with_header(json!({"alg": "RS256"}), &claims(ISS, "u"));
    verifier
        .verify(&no_kid)
        .await
        .expect("single key: kid optional");

    fake.set_keys(vec![rsa_a().jwk(), rsa_b().jwk()]);
    clock.advance(601);
    let fresh = json!({"iss": ISS, "sub": "u", "exp": NOW + 1000});
    let no_kid = rsa_a().sign_with_header(json!({"alg": "RS256"}), &fresh);
    assert_rejected(
        verifier.verify(&no_kid).await,
        "no `kid` header and the issuer's JWKS has 2",
    );
}

#[tokio::test]
async fn rejects_jwk_whose_alg_or_type_does_not_match_header() {
    let ec = EcKey::generate("shared-kid");
    let mut rs384 = rsa_a().jwk();
    rs384["alg"] = json!("RS384");
    let mut enc = rsa_b().jwk();
    enc["use"] = json!("enc");
    let fake = FakeJwks::start(vec![rs384, enc]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    assert_rejected(
        verifier.verify(&rsa_a().sign(&claims(ISS, "u"))).await,
        "is for RS384",
    );
    assert_rejected(
        verifier.verify(&rsa_b().sign(&claims(ISS, "u"))).await,
        "not a signature key",
    );

    // An EC key cannot verify an RS256 header, even under the right kid.
    let mut ec_jwk = ec.jwk();
    ec_jwk.as_object_mut().expect("object").remove("alg");
    let fake = FakeJwks::start(vec![ec_jwk]).await;
    let (verifier, _clock) = new_verifier(vec![provider(&fake.url())]);
    let token = rsa_a().sign_with_header(
        json!({"alg": "RS256", "kid": "shared-kid"}),
        &claims(ISS, "u"),
    );
    assert_rejected(verifier.verify(&token).await, "cannot verify RS256");
}

#[tokio::test]
async fn jwks_outage_keeps_cached_keys() {
    let fake = FakeJwks::start(vec![rsa_a().jwk()]).await;
    let (verifier, clock) = new_verifier(vec![provider(&fake.url())]);
    verifier.prefetch().await.expect("prefetch");
    assert_eq!(fake.fetches(), 1);
    fake.set_status(500);
    clock.advance(700); // past the TTL: a refresh is attempted and fails
    let fresh = json!({"iss": ISS, "sub": "u", "exp": NOW + 1000});
    verifier
        .verify(&rsa_a().sign(&fresh))
        .await
        .expect("stale keys still used");
    assert_eq!(fake.fetches(), 2);
    verifier
        .verify(&rsa_a().sign(&fresh))
        .await
        .expect("no refetch storm");
    assert_eq!(fake.fetches(), 2);

    // With nothing cached, an unreachable JWKS is an upstream error, not a bad token.
    let down = FakeJwks::start(vec![]).await;
    down.set_status(503);
    let (verifier, _clock) = new_verifier(vec![provider(&down.url())]);
    let err = verifier
        .verify(&rsa_a().sign(&claims(ISS, "u")))
        .await
        .expect_err("no keys");
    assert_eq!(err.code(), ErrorCode::ExternalServiceError, "{err}");
    assert!(err.message().contains("503"), "{}", err.message());
}

#[tokio::test]
async fn jwks_from_file_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        json!({"keys": [rsa_a().jwk(), {"kty": "weird"}]}).to_string(),
    )
    .expect("write");
    let spec = format!("issuer={ISS},jwks={}", path.display());
    let (verifier, _clock) = new_verifier(vec![ProviderConfig::parse(&spec).expect("spec")]);
    verifier
        .verify(&rsa_a().sign(&claims(ISS, "u")))
        .await
        .expect("file JWKS");
}

#[tokio::test]
async fn workos_preset_accepts_token_from_fake_workos() {
    let client_id = "client_01TEST";
    let fake = FakeJwks::start_workos(client_id, vec![rsa_a().jwk()]).await;
    let providers = workos_providers(client_id, &fake.base_url());
    assert_eq!(
        providers
            .iter()
            .map(|p| p.issuer.as_str())
            .collect::<Vec<_>>(),
        [
            "https://api.workos.com/",
            "https://api.workos.com/user_management/client_01TEST"
        ]
    );
    assert_eq!(
        providers[0].jwks,
        JwksSource::Url(format!("{}/sso/jwks/{client_id}", fake.base_url()))
    );
    let (verifier, _clock) = new_verifier(providers);

    let iss = format!("https://api.workos.com/user_management/{client_id}");
    let c = json!({
        "iss": iss, "sub": "user_01HXYZ", "sid": "session_01HXYZ", "jti": "01HJTI",
        "org_id": "org_01ABC", "role": "member", "permissions": ["meetings:join"],
        "iat": NOW, "exp": NOW + 300
    });
    let id = verifier
        .verify(&rsa_a().sign(&c))
        .await
        .expect("WorkOS token");
    assert_eq!(id.subject, "user_01HXYZ");
    assert_eq!(id.token_identifier, format!("{iss}|user_01HXYZ"));
    assert_eq!(id.session_id.as_deref(), Some("session_01HXYZ"));
    assert_eq!(id.org_id.as_deref(), Some("org_01ABC"));
    assert_eq!(id.role.as_deref(), Some("member"));
    assert_eq!(id.permissions, ["meetings:join"]);
    assert_eq!(id.email, None);

    // The older issuer style shares the same (single) JWKS fetch.
    let c =
        json!({"iss": "https://api.workos.com/", "sub": "user_2", "sid": "s", "exp": NOW + 300});
    verifier
        .verify(&rsa_a().sign(&c))
        .await
        .expect("legacy issuer");
    assert_eq!(fake.fetches(), 1);

    // ES256 is not part of the WorkOS preset.
    let ec = EcKey::generate("ec");
    let c = json!({"iss": iss, "sub": "u", "exp": NOW + 300});
    assert_rejected(verifier.verify(&ec.sign(&c)).await, "ES256 is not allowed");

    // The real default base.
    assert_eq!(
        workos_providers(client_id, DEFAULT_WORKOS_API_BASE)[1].jwks,
        JwksSource::Url(format!("https://api.workos.com/sso/jwks/{client_id}"))
    );
}

#[test]
fn verifier_and_its_future_are_send() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    let (verifier, _clock) = new_verifier(vec![]);
    assert_send_sync(&verifier);
    assert!(verifier.is_empty());
    let future = verifier.verify("a.b.c");
    assert_send(&future);
}

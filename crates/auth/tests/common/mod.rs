//! Shared test helpers: test keys, a hand-rolled JWT signer (so tests can
//! craft any header), a controllable clock and a local fake JWKS server.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use auth::{Clock, ProviderConfig, Verifier, VerifierOptions};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A fixed "now" for tests (2023-11-14T22:13:20Z).
pub const NOW: u64 = 1_700_000_000;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(header).base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

pub struct RsaKey {
    pub kid: String,
    pair: RsaKeyPair,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

impl RsaKey {
    fn generate(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        Self {
            kid: kid.to_owned(),
            pair,
            n: components.n,
            e: components.e,
        }
    }

    /// The public JWK as WorkOS serves it.
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": b64(&self.n), "e": b64(&self.e)})
    }

    /// The DER `RSAPublicKey` bytes (what an attacker would use as an HMAC secret).
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// Signs with RS256 under an arbitrary header.
    pub fn sign_with_header(&self, header: Value, claims: &Value) -> String {
        let input = signing_input(&header, claims);
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("rsa sign");
        format!("{input}.{}", b64(&sig))
    }

    /// Signs with RS256 and this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// Shared RSA keys (RSA key generation is slow, so each is made once per test binary).
pub fn rsa_a() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| RsaKey::generate("sso_oidc_key_pair_A"))
}

pub fn rsa_b() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| RsaKey::generate("sso_oidc_key_pair_B"))
}

pub struct EcKey {
    pub kid: String,
    pair: EcdsaKeyPair,
}

impl EcKey {
    pub fn generate(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec keygen");
        Self {
            kid: kid.to_owned(),
            pair,
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
               "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = signing_input(&header, claims);
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ec sign");
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

/// HS256 over an arbitrary header with `secret` as the HMAC key.
pub fn sign_hs256(secret: &[u8], header: Value, claims: &Value) -> String {
    let input = signing_input(&header, claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// Standard claims valid at [`NOW`] for five minutes.
pub fn claims(iss: &str, sub: &str) -> Value {
    json!({"iss": iss, "sub": sub, "iat": NOW, "exp": NOW + 300})
}

/// A clock tests can move.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn at(now: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now)))
    }

    pub fn clock(&self) -> Clock {
        let now = Arc::clone(&self.0);
        Arc::new(move || now.load(Ordering::SeqCst))
    }

    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

/// A verifier over `providers` with default options and a test clock at [`NOW`].
pub fn new_verifier(providers: Vec<ProviderConfig>) -> (Verifier, TestClock) {
    new_verifier_with(providers, VerifierOptions::default())
}

pub fn new_verifier_with(
    providers: Vec<ProviderConfig>,
    options: VerifierOptions,
) -> (Verifier, TestClock) {
    let clock = TestClock::at(NOW);
    let verifier = Verifier::with_clock(providers, options, clock.clock()).expect("verifier");
    (verifier, clock)
}

struct FakeState {
    jwks: Mutex<Value>,
    fetches: AtomicUsize,
    status: AtomicU16,
    delay_ms: AtomicU64,
    workos_client_id: String,
}

/// A local JWKS server on 127.0.0.1 that counts fetches.
///
/// Serves `GET /jwks.json` and, like WorkOS, `GET /sso/jwks/{client_id}`
/// (404 for any other client id).
pub struct FakeJwks {
    addr: SocketAddr,
    state: Arc<FakeState>,
}

impl FakeJwks {
    pub async fn start(keys: Vec<Value>) -> Self {
        Self::start_workos("client_test", keys).await
    }

    pub async fn start_workos(client_id: &str, keys: Vec<Value>) -> Self {
        let state = Arc::new(FakeState {
            jwks: Mutex::new(json!({ "keys": keys })),
            fetches: AtomicUsize::new(0),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            workos_client_id: client_id.to_owned(),
        });
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route("/sso/jwks/{client_id}", get(serve_workos_jwks))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self) -> String {
        format!("{}/jwks.json", self.base_url())
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.jwks.lock().expect("lock") = json!({ "keys": keys });
    }

    /// Makes every following response use `status` (200 restores normal service).
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

async fn respond(state: &FakeState) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = state.status.load(Ordering::SeqCst);
    if status != 200 {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (code, "fake failure").into_response();
    }
    let body = state.jwks.lock().expect("lock").clone();
    Json(body).into_response()
}

async fn serve_jwks(State(state): State<Arc<FakeState>>) -> Response {
    respond(&state).await
}

async fn serve_workos_jwks(
    State(state): State<Arc<FakeState>>,
    Path(client_id): Path<String>,
) -> Response {
    if client_id != state.workos_client_id {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    }
    respond(&state).await
}

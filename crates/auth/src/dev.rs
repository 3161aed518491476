//! Development tokens signed by a local, persistent ES256 key.
//!
//! [`DevKeys::load_or_create`] keeps a P-256 private key in
//! `{data_dir}/dev-auth/key.pk8` (PKCS#8 DER, mode 0600, written to a temporary
//! file and then moved into place, so a crash never leaves a half-written key
//! and two processes starting together end up with the same key). The key id
//! (`kid`) is the RFC 7638 thumbprint of the public key: random with the key,
//! and the same every time the key is loaded again.
//!
//! [`DevKeys::provider`] is the matching [`ProviderConfig`] (issuer and
//! audience [`DEV_ISSUER`]/[`DEV_AUDIENCE`], inline JWKS), and
//! [`DevKeys::mint`] signs tokens for it. Never enable the dev provider in
//! production: whoever can read the key file can be anyone.

use std::fmt;
use std::fs;
use std::io::{ErrorKind as IoErrorKind, Write as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use errors::{Error, Result};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::config::{JwksSource, ProviderConfig};

/// The `iss` of development tokens.
pub const DEV_ISSUER: &str = "connvo-dev";

/// The `aud` of development tokens (required by [`DevKeys::provider`]).
pub const DEV_AUDIENCE: &str = "connvo-dev";

/// Claims that [`DevKeys::mint`] may not override through [`DevTokenClaims::extra`].
const RESERVED_CLAIMS: [&str; 6] = ["iss", "aud", "sub", "iat", "nbf", "exp"];

/// What a development token says about its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct DevTokenClaims {
    /// The `sub` claim (required, non-empty).
    pub subject: String,
    /// The `email` claim.
    pub email: Option<String>,
    /// The `name` claim.
    pub name: Option<String>,
    /// The `org_id` claim.
    pub org_id: Option<String>,
    /// The `role` claim.
    pub role: Option<String>,
    /// Lifetime in seconds (`exp = now + ttl_secs`, default 3600).
    pub ttl_secs: u64,
    /// Any further claims (e.g. `permissions`); the registered claims
    /// `iss`, `aud`, `sub`, `iat`, `nbf` and `exp` cannot be set here.
    pub extra: Map<String, Value>,
}

impl Default for DevTokenClaims {
    fn default() -> Self {
        Self {
            subject: String::new(),
            email: None,
            name: None,
            org_id: None,
            role: None,
            ttl_secs: 3600,
            extra: Map::new(),
        }
    }
}

impl DevTokenClaims {
    /// Claims for `subject` with every other field at its default.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ..Self::default()
        }
    }
}

/// The local development signing key.
pub struct DevKeys {
    kid: String,
    pkcs8: Vec<u8>,
    x: String,
    y: String,
    path: PathBuf,
}

impl fmt::Debug for DevKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKeys")
            .field("kid", &self.kid)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DevKeys {
    /// Loads `{data_dir}/dev-auth/key.pk8`, creating it (and the directory,
    /// mode 0700) with a new random P-256 key if it does not exist.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("dev-auth");
        fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        set_mode(&dir, 0o700)?;
        let path = dir.join("key.pk8");
        match fs::read(&path) {
            Ok(bytes) => Self::from_file_bytes(bytes, path),
            Err(e) if e.kind() == IoErrorKind::NotFound => Self::create(&dir, path),
            Err(e) => Err(io_error("read", &path, &e)),
        }
    }

    fn from_file_bytes(pkcs8: Vec<u8>, path: PathBuf) -> Result<Self> {
        set_mode(&path, 0o600)?;
        Self::from_pkcs8(pkcs8, path.clone()).map_err(|_| {
            Error::internal(format!(
                "the dev auth key {} is not a P-256 PKCS#8 key; delete it to create a new one",
                path.display()
            ))
        })
    }

    fn create(dir: &Path, path: PathBuf) -> Result<Self> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::internal("cannot generate the dev auth key"))?;
        let pkcs8 = document.as_ref().to_vec();

        let mut suffix = [0u8; 8];
        rng.fill(&mut suffix)
            .map_err(|_| Error::internal("no randomness for a temp file"))?;
        let tmp = dir.join(format!(".key.pk8.{}.tmp", hex_lower(&suffix)));
        let written = write_private_file(&tmp, &pkcs8).and_then(|()| publish(&tmp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        match written? {
            // Another process created the key first: use theirs.
            Published::LostRace => {
                let bytes = fs::read(&path).map_err(|e| io_error("read", &path, &e))?;
                Self::from_file_bytes(bytes, path)
            }
            Published::Done => {
                if let Ok(d) = fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                Self::from_pkcs8(pkcs8, path)
                    .map_err(|_| Error::internal("the generated dev auth key does not load"))
            }
        }
    }

    fn from_pkcs8(pkcs8: Vec<u8>, path: PathBuf) -> std::result::Result<Self, ()> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(|_| ())?;
        // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(());
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        Ok(Self {
            kid,
            pkcs8,
            x,
            y,
            path,
        })
    }

    /// The key id put in token headers and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The file the private key lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The issuer of development tokens, [`DEV_ISSUER`].
    pub fn issuer(&self) -> &'static str {
        DEV_ISSUER
    }

    /// The public key as a JWK Set: one `EC`/`P-256` key with `kid`, `alg: ES256`, `use: sig`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![Jwk {
                common: CommonParameters {
                    public_key_use: Some(PublicKeyUse::Signature),
                    key_algorithm: Some(KeyAlgorithm::ES256),
                    key_id: Some(self.kid.clone()),
                    ..CommonParameters::default()
                },
                algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: self.x.clone(),
                    y: self.y.clone(),
                }),
            }],
        }
    }

    /// The provider that accepts development tokens: issuer [`DEV_ISSUER`],
    /// inline JWKS, audience [`DEV_AUDIENCE`], ES256 only.
    pub fn provider(&self) -> ProviderConfig {
        ProviderConfig {
            issuer: DEV_ISSUER.to_owned(),
            jwks: JwksSource::Inline(self.jwks()),
            audience: Some(DEV_AUDIENCE.to_owned()),
            algorithms: vec![Algorithm::ES256],
        }
    }

    /// Signs a development token valid from `now_secs` for `claims.ttl_secs`,
    /// carrying `iss`, `aud`, `sub`, `iat`, `nbf`, `exp` and the optional
    /// `email`, `name`, `org_id`, `role` and extra claims.
    pub fn mint(&self, claims: DevTokenClaims, now_secs: u64) -> Result<String> {
        if claims.subject.trim().is_empty() {
            return Err(Error::bad_request("a dev token needs a non-empty subject"));
        }
        if claims.ttl_secs == 0 {
            return Err(Error::bad_request("a dev token needs a positive ttl_secs"));
        }
        if let Some(reserved) = RESERVED_CLAIMS
            .iter()
            .find(|c| claims.extra.contains_key(**c))
        {
            return Err(Error::bad_request(format!(
                "the `{reserved}` claim of a dev token cannot be set through `extra`"
            )));
        }
        let mut body = claims.extra;
        body.insert("iss".into(), DEV_ISSUER.into());
        body.insert("aud".into(), DEV_AUDIENCE.into());
        body.insert("sub".into(), claims.subject.into());
        body.insert("iat".into(), now_secs.into());
        body.insert("nbf".into(), now_secs.into());
        body.insert(
            "exp".into(),
            now_secs.saturating_add(claims.ttl_secs).into(),
        );
        for (name, value) in [
            ("email", claims.email),
            ("name", claims.name),
            ("org_id", claims.org_id),
            ("role", claims.role),
        ] {
            if let Some(value) = value {
                body.insert(name.into(), value.into());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &body, &EncodingKey::from_ec_der(&self.pkcs8))
            .map_err(|e| Error::internal(format!("cannot sign a dev token: {e}")))
    }
}

enum Published {
    Done,
    LostRace,
}

/// Moves `tmp` to `path` without replacing an existing key: a hard link is
/// atomic and fails if `path` exists; filesystems without hard links fall back
/// to a rename.
fn publish(tmp: &Path, path: &Path) -> Result<Published> {
    match fs::hard_link(tmp, path) {
        Ok(()) => {
            let _ = fs::remove_file(tmp);
            Ok(Published::Done)
        }
        Err(e) if e.kind() == IoErrorKind::AlreadyExists => {
            let _ = fs::remove_file(tmp);
            Ok(Published::LostRace)
        }
        Err(_) => {
            fs::rename(tmp, path).map_err(|e| io_error("rename into", path, &e))?;
            Ok(Published::Done)
        }
    }
}

fn write_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| io_error("create", path, &e))?;
    // The umask may have narrowed the mode further; make it exactly 0600.
    set_mode(path, 0o600)?;
    file.write_all(bytes)
        .map_err(|e| io_error("write", path, &e))?;
    file.sync_all().map_err(|e| io_error("sync", path, &e))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let current = fs::metadata(path).map_err(|e| io_error("stat", path, &e))?;
    if current.permissions().mode() & 0o777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error("chmod", path, &e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

fn io_error(action: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::internal(format!("dev auth: cannot {action} {}: {e}", path.display()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

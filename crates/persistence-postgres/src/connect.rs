//! From a database URL to connection pools: URL parsing, connection
//! settings, TLS and a description of the server for error messages.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use errors::{Error, Result};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PostgresOptions;
use crate::conn::describe;
use crate::tls;

/// The driver's default `keepalives_idle` (2 hours), which we shorten unless
/// the URL chose a value.
const DRIVER_DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// TCP keepalive idle time of our connections: a server that vanished
/// without closing the connection is noticed within about a minute.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);

/// Where and how to connect.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Driver configuration, with our defaults applied.
    pub(crate) config: tokio_postgres::Config,
    /// `host:port (database "…", user "…")`, for messages; never the
    /// password.
    pub(crate) target: String,
    /// How long establishing one connection may take.
    pub(crate) connect_timeout: Duration,
    tls: MakeRustlsConnect,
}

impl Endpoint {
    /// Parses `url` (a `postgres://` URL or a libpq key-value string) and
    /// applies `options`.
    pub(crate) fn new(url: &str, options: &PostgresOptions) -> Result<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::internal(format!(
                "postgres: invalid database URL: {e} (expected \
                 postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require])"
            ))
        })?;
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(Error::internal(
                "postgres: the database URL names no host (e.g. postgres://user@127.0.0.1:5432/db)",
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name(&options.application_name);
        }
        if config.get_keepalives_idle() == DRIVER_DEFAULT_KEEPALIVES_IDLE {
            config.keepalives_idle(KEEPALIVES_IDLE);
        }
        if let Some(ca_file) = &options.tls_ca_file {
            if config.get_ssl_mode() == SslMode::Disable {
                return Err(Error::internal(format!(
                    "postgres: tls_ca_file ({}) is set but the URL says sslmode=disable",
                    ca_file.display()
                )));
            }
            config.ssl_mode(SslMode::Require);
        }
        let tls = tls::connector(options.tls_ca_file.as_deref())?;
        let target = describe_target(&config);
        Ok(Self {
            config,
            target,
            connect_timeout,
            tls,
        })
    }

    /// A pool of at most `size` connections. Creating a connection (TCP, TLS,
    /// authentication) is bounded by the connect timeout; waiting for a free
    /// connection is not.
    pub(crate) fn pool(&self, size: usize) -> Result<Pool> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                // Our connections go back to the pool only without an open
                // transaction (see `conn::TxnConn`), and the pool drops closed
                // ones, so recycling needs no extra round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| Error::internal(format!("postgres: cannot build connection pool: {e}")))
    }

    /// One unpooled connection whose driver task runs on the current Tokio
    /// runtime (for administrative work such as test clean-up).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn connect_client(&self) -> Result<tokio_postgres::Client> {
        let attempt = self.config.connect(self.tls.clone());
        let (client, connection) = tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| {
                Error::internal(format!(
                    "postgres: cannot connect to {}: timed out after {:?}; is PostgreSQL \
                     running and reachable?",
                    self.target, self.connect_timeout
                ))
            })?
            .map_err(|e| {
                Error::internal(format!(
                    "postgres: cannot connect to {}: {}; is PostgreSQL running and reachable?",
                    self.target,
                    describe(&e)
                ))
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres admin connection ended");
            }
        });
        Ok(client)
    }
}

/// `host:port[,host:port…] (database "…", user "…")`.
fn describe_target(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| {
        ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432)
    };
    let mut endpoints: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            Host::Unix(path) => format!("unix socket {}:{}", path.display(), port(i)),
        })
        .collect();
    if endpoints.is_empty() {
        endpoints = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| match addr {
                std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", port(i)),
                std::net::IpAddr::V4(v4) => format!("{v4}:{}", port(i)),
            })
            .collect();
    }
    let user = config.get_user().unwrap_or("(default)");
    let database = config.get_dbname().unwrap_or(user);
    format!(
        "{} (database {database:?}, user {user:?})",
        endpoints.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Result<Endpoint> {
        Endpoint::new(url, &PostgresOptions::default())
    }

    #[test]
    fn targets_name_host_port_database_and_user() {
        let e = endpoint("postgres://alice:secret@db.example:6543/app").unwrap();
        assert_eq!(
            e.target,
            "db.example:6543 (database \"app\", user \"alice\")"
        );
        assert!(!e.target.contains("secret"));
        let e = endpoint("postgres://bob@127.0.0.1/test").unwrap();
        assert_eq!(e.target, "127.0.0.1:5432 (database \"test\", user \"bob\")");
        let e = endpoint("host=/run/postgresql user=carol").unwrap();
        assert_eq!(
            e.target,
            "unix socket /run/postgresql:5432 (database \"carol\", user \"carol\")"
        );
    }

    #[test]
    fn options_fill_in_what_the_url_leaves_open() {
        let e = endpoint("postgres://u@h/d").unwrap();
        assert_eq!(
            e.config.get_connect_timeout(),
            Some(&Duration::from_secs(10))
        );
        assert_eq!(e.config.get_application_name(), Some("connvo"));
        assert_eq!(e.config.get_keepalives_idle(), KEEPALIVES_IDLE);
        let e = endpoint("postgres://u@h/d?connect_timeout=3&application_name=node-7").unwrap();
        assert_eq!(e.connect_timeout, Duration::from_secs(3));
        assert_eq!(e.config.get_application_name(), Some("node-7"));
    }

    #[test]
    fn bad_urls_are_explained() {
        let err = endpoint("postgres://u@h/d?sslmode=verify-full")
            .err()
            .unwrap();
        assert!(err.message().contains("invalid database URL"), "{err}");
        assert!(
            err.message().contains("sslmode=disable|prefer|require"),
            "{err}"
        );
        let err = endpoint("user=u dbname=d").err().unwrap();
        assert!(err.message().contains("names no host"), "{err}");
    }

    #[test]
    fn a_ca_file_requires_tls() {
        let options = PostgresOptions {
            tls_ca_file: Some("/nonexistent/ca.pem".into()),
            ..PostgresOptions::default()
        };
        let err = Endpoint::new("postgres://u@h/d?sslmode=disable", &options)
            .err()
            .unwrap();
        assert!(err.message().contains("sslmode=disable"), "{err}");
        let err = Endpoint::new("postgres://u@h/d", &options).err().unwrap();
        assert!(err.message().contains("/nonexistent/ca.pem"), "{err}");
    }
}

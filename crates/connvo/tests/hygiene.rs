//! Connection hygiene: the Origin allowlist and the connection limit.

mod common;

use common::{Server, ServerOptions, TestDir, Ws};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn upgrade_status(url: &str, origin: Option<&str>) -> Result<(), u16> {
    let mut request = url.into_client_request().expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected upgrade error: {e}"),
    }
}

#[tokio::test]
async fn origin_allowlist_refuses_other_origins() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        ServerOptions {
            extra_args: vec![
                "--allowed-origin".into(),
                "https://app.connvo.example".into(),
            ],
            ..Default::default()
        },
    );
    let url = server.ws_url("/api/1.48.0/sync");
    assert_eq!(
        upgrade_status(&url, Some("https://app.connvo.example")).await,
        Ok(())
    );
    assert_eq!(
        upgrade_status(&url, Some("https://evil.example")).await,
        Err(403)
    );
    // Non-browser clients (no Origin header) are not affected.
    assert_eq!(upgrade_status(&url, None).await, Ok(()));
    server.assert_healthy().await;
}

#[tokio::test]
async fn connection_limit_refuses_extra_sockets_and_frees_slots() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        ServerOptions {
            extra_args: vec!["--max-connections".into(), "2".into()],
            ..Default::default()
        },
    );
    let url = server.ws_url("/api/1.48.0/sync");
    let first = Ws::connect(&url).await;
    let _second = Ws::connect(&url).await;
    assert_eq!(upgrade_status(&url, None).await, Err(503));
    drop(first);
    // The slot comes back once the server notices the close.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if upgrade_status(&url, None).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "a freed connection slot was not reused");
    server.assert_healthy().await;
}

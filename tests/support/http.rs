//! Raw HTTP/1.1 over any stream (plain TCP or TLS): for probes and for
//! clients that misbehave on purpose (a head without its body, a body that
//! never ends), which an HTTP client library would not send.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::wait::DEADLINE;

/// A whole request with `connection: close`, so the reply ends with the connection.
pub fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The head of a POST of `content_length` bytes of JSON to `path`, kept
/// alive: the caller sends the body, in part, slowly or never (append the
/// first bytes to send them in the same write).
pub fn post_head(path: &str, content_length: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n\r\n"
    )
    .into_bytes()
}

/// Sends a whole request (made by [`request`]) and reads the reply to the
/// end; empty when the server closed the connection first (or after [`DEADLINE`]).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &[u8]) -> Vec<u8> {
    if stream.write_all(request).await.is_err() {
        return Vec::new();
    }
    let mut reply = Vec::new();
    let _ = timeout(DEADLINE, stream.read_to_end(&mut reply)).await;
    reply
}

/// Reads until the peer closes the connection (EOF or reset); what was
/// read, or Err when it stays open for [`DEADLINE`].
pub async fn read_to_close<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, String> {
    let mut reply = Vec::new();
    match timeout(DEADLINE, stream.read_to_end(&mut reply)).await {
        Ok(_) => Ok(reply),
        Err(_) => Err(format!("the server kept the connection open for {DEADLINE:?}")),
    }
}

/// The status code of an HTTP/1.1 reply, if it starts with a status line.
pub fn status_code(reply: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(reply).strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

//! One plain HTTP/1.1 GET for the lab's own endpoints: the lab app's /healthz (in `status`)
//! and the daemons' /readyz (while `up` waits for them). No client library: the lab talks
//! to its own few servers only.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One plain HTTP/1.1 GET: (status, body). Enough for the lab's own endpoints.
pub async fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
        parse_response(&String::from_utf8_lossy(&response))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

fn parse_response(text: &str) -> Result<(u16, String), String> {
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP response")?;
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("malformed HTTP status line")?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_body_of_a_plain_response() {
        let r = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 7\r\n\r\ndb down";
        assert_eq!(parse_response(r).unwrap(), (503, "db down".to_string()));
        assert!(parse_response("garbage").is_err());
    }
}

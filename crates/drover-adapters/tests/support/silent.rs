//! A server that accepts every TCP connection and never answers (included with `#[path]`):
//! an API server, receiver or etcd member that went silent — an overloaded control plane,
//! a half-open link, a process stopped with SIGSTOP. Every socket is held open, unread, for
//! as long as the runtime lives, so a client sees neither an answer nor a reset.

use std::net::SocketAddr;

pub async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

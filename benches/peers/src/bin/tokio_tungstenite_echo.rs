//! An echo server on tokio-tungstenite and a current-thread tokio runtime,
//! written as that crate's own echo example: each connection's message
//! stream, data messages only, forwarded into its sink. tungstenite answers
//! pings and Close frames by itself.

#![forbid(unsafe_code)]

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

/// Runs the echo over one accepted connection until it closes.
async fn echo(stream: TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    // A reset or protocol error just ends the connection.
    let _ = read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary())).forward(write).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = ferrows_peers::listen_addr("tokio_tungstenite_echo");
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
        eprintln!("tokio_tungstenite_echo: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo(stream));
            }
            // Out of descriptors, say: the connection waits in the backlog.
            Err(e) => eprintln!("tokio_tungstenite_echo: accept: {e}"),
        }
    }
}

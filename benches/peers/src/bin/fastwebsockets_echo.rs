//! An echo server on fastwebsockets and a current-thread tokio runtime, set
//! up as that crate's own echo example: hyper's HTTP/1 server answers the
//! upgrade request (fastwebsockets' `upgrade` feature), then every data
//! message is written back. A `FragmentCollector` reassembles fragmented
//! messages; pings and Close frames are answered by fastwebsockets itself
//! (automatic pong and close, set explicitly below).

#![forbid(unsafe_code)]

use fastwebsockets::upgrade::{upgrade, UpgradeFut};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Echoes data messages on an upgraded connection until it closes.
async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = upgraded.await?;
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// Answers the upgrade request and starts the echo on the upgraded connection.
async fn handle(mut request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade(&mut request)?;
    tokio::spawn(async move {
        // As in fastwebsockets' example: outside tokio's cooperative budget.
        // A reset or protocol error just ends the connection.
        let _ = tokio::task::unconstrained(echo(upgraded)).await;
    });
    Ok(response)
}

/// Serves one accepted connection: its HTTP request, then the WebSocket.
async fn serve(stream: TcpStream) {
    let io = TokioIo::new(stream);
    let _ = http1::Builder::new().serve_connection(io, service_fn(handle)).with_upgrades().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = ferrows_peers::listen_addr("fastwebsockets_echo");
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
        eprintln!("fastwebsockets_echo: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
            // Out of descriptors, say: the connection waits in the backlog.
            Err(e) => eprintln!("fastwebsockets_echo: accept: {e}"),
        }
    }
}

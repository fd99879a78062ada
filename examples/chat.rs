//! A small custom handler: a chat where each connection has a name.
//!
//! Connect to `ws://127.0.0.1:9003/?name=alice` and send text: every
//! connection on the same event loop receives `alice: <text>`. The name
//! lives in the per-connection state; `/nick bob` changes it. Paths other
//! than `/` are refused with 404, and a Ping is sent on `/ping`.
//!
//! ```sh
//! cargo run --example chat
//! ```
//!
//! (One loop keeps everyone in one room; across loops and processes,
//! broadcasting belongs to the pub/sub layer.)

use ferrows::proto::handshake::StatusCode;
use ferrows::proto::CloseCode;
use ferrows::runtime::{Context, Decision, Handler, Message, Server, SessionId, Upgrade};

/// Per-connection state: the speaker's name.
struct Member {
    name: String,
}

struct Chat;

impl Handler for Chat {
    type State = Member;

    fn upgrade(&mut self, request: &Upgrade<'_>) -> Decision<Member> {
        if request.path() != "/" {
            return Decision::refuse(StatusCode::NOT_FOUND, "no such room");
        }
        let name = request
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("name=")))
            .filter(|name| !name.is_empty() && name.len() <= 32)
            .unwrap_or("anonymous")
            .to_owned();
        Decision::accept(Member { name })
    }

    fn on_open(&mut self, ctx: &mut Context<'_, Member>, session: SessionId) {
        let name = ctx.state(session).map(|m| m.name.clone()).unwrap_or_default();
        broadcast(ctx, &format!("* {name} joined"));
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Member>, session: SessionId, message: Message<'_>) {
        let Message::Text(text) = message else {
            let _ = ctx.close(session, CloseCode::UNSUPPORTED_DATA, "text only");
            return;
        };
        if let Some(new_name) = text.strip_prefix("/nick ") {
            if let Some(member) = ctx.state(session) {
                member.name = new_name.trim().chars().take(32).collect();
            }
            return;
        }
        if text == "/ping" {
            let _ = ctx.send_ping(session, b"are you there?");
            return;
        }
        let name = ctx.state(session).map(|m| m.name.clone()).unwrap_or_default();
        broadcast(ctx, &format!("{name}: {text}"));
    }

    fn on_close(&mut self, ctx: &mut Context<'_, Member>, session: SessionId, code: CloseCode, _reason: &str) {
        let name = ctx.state(session).map(|m| m.name.clone()).unwrap_or_default();
        broadcast(ctx, &format!("* {name} left ({code})"));
    }
}

fn broadcast(ctx: &mut Context<'_, Member>, line: &str) {
    let everyone: Vec<SessionId> = ctx.sessions().collect();
    for member in everyone {
        // A member whose queue is full misses the line rather than slowing the room.
        let _ = ctx.send_text(member, line);
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let server = Server::builder().listen(([127, 0, 0, 1], 9003).into()).loops(1).start(|_loop_index| Chat)?;
    log::info!("chat example on ws://{}/?name=you", server.local_addrs()[0]);
    server.join()
}

//! The smallest server: echo every message back.
//!
//! ```sh
//! cargo run --example echo            # listens on 127.0.0.1:9002
//! ```

use ferrows::runtime::{Context, Decision, Handler, Message, Server, SessionId, Upgrade};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn upgrade(&mut self, _request: &Upgrade<'_>) -> Decision<()> {
        Decision::accept(())
    }

    fn on_message(&mut self, ctx: &mut Context<'_, ()>, session: SessionId, message: Message<'_>) {
        let _ = match message {
            Message::Text(text) => ctx.send_text(session, text),
            Message::Binary(data) => ctx.send_binary(session, data),
        };
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let server = Server::builder().listen(([127, 0, 0, 1], 9002).into()).start(|_loop_index| Echo)?;
    log::info!("echo example on ws://{}/", server.local_addrs()[0]);
    server.join()
}

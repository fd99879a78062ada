//! The echo handler: every message goes back to its sender unchanged.

use crate::runtime::{Context, Decision, Handler, Message, SessionId, Upgrade};

/// Echoes every message on every path, accepting every upgrade.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    type State = ();

    fn upgrade(&mut self, _request: &Upgrade<'_>) -> Decision<()> {
        Decision::accept(())
    }

    fn on_message(&mut self, ctx: &mut Context<'_, ()>, session: SessionId, message: Message<'_>) {
        let sent = match message {
            Message::Text(text) => ctx.send_text(session, text),
            Message::Binary(data) => ctx.send_binary(session, data),
        };
        if let Err(e) = sent {
            log::debug!("echo to {session} dropped: {e}");
        }
    }
}

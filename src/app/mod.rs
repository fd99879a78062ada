//! What the server binary runs on top of the engine.

mod echo;
pub mod pubsub_protocol;

pub use echo::Echo;

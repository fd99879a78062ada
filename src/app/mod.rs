//! What the server binary runs on top of the engine.

mod echo;
pub mod pubsub_protocol;
mod routes;

pub use echo::Echo;
pub use routes::{App, AppConfig, Member};

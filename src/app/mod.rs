//! What the server binary runs on top of the engine.

mod echo;

pub use echo::Echo;

//! What the server binary runs on top of the engine.

mod echo;
pub mod pubsub_protocol;
mod route_table;
mod routes;

pub use echo::Echo;
pub use route_table::{RouteError, RouteHandler, RouteSpec};
pub use routes::{App, AppConfig, Member};

//! What a session asks of the application, handed to the loop's [`Handler`]:
//! the decision on an upgrade, the answer to a plain request, each message,
//! and the end of a session.

use std::net::SocketAddr;
use std::time::Instant;

use super::event_loop::EventLoop;
use super::handler::{Context, Decision, Handler, Message, SessionId, Upgrade};
use super::http::{HttpRequest, HttpResponse};
use super::metrics::Refusal;
use super::pubsub::Membership;
use crate::proto::handshake::{write_error_response, write_error_response_with_headers, Request, StatusCode};
use crate::proto::{Event, Received};
use crate::session::{Input, UpgradeInput};

impl<H: Handler> EventLoop<H> {
    /// Acts on what a read of `bytes` brought, then hands the session's
    /// messages to the handler (lent from `bytes` where they came whole).
    pub(super) fn dispatch(&mut self, key: usize, input: Option<Input>, bytes: &[u8], now: Instant) {
        let Some(slot) = self.sessions.get(key) else { return };
        let peer = slot.session.peer();
        match input {
            None => {}
            Some(Input::Upgrade(upgrade)) => self.decide_upgrade(key, upgrade, now),
            Some(Input::Http { request, body }) => self.answer_http(key, &request, &body, now),
            Some(Input::BadRequest(reason)) => {
                log::debug!("{peer}: bad request: {reason}");
                self.shared.counters.count_refusal(Refusal::BadRequest);
            }
            Some(Input::Violation(violation)) => {
                log::warn!("{peer}: closing with {}: {violation}", violation.close_code());
            }
        }
        self.dispatch_messages(key, bytes, now);
    }

    /// Refuses an upgrade the server or the handler turned down: counted, answered with `status`.
    fn refuse(&mut self, key: usize, why: Refusal, status: StatusCode, reason: &str, now: Instant) {
        self.shared.counters.count_refusal(why);
        if let Some(slot) = self.sessions.get_mut(key) {
            slot.session.refuse(status, reason, &self.settings, now);
        }
    }

    fn decide_upgrade(&mut self, key: usize, mut input: UpgradeInput, now: Instant) {
        let Some(slot) = self.sessions.get(key) else { return };
        let peer = SocketAddr::from(slot.session.peer());
        let request: &Request = &input.request;
        if self.drain_deadline.is_some() {
            log::debug!("{peer}: upgrade refused with 503: shutting down");
            return self.refuse(key, Refusal::Draining, StatusCode::SERVICE_UNAVAILABLE, "shutting down", now);
        }
        if !self.config.allowed_origins.allows(request.origin()) {
            log::info!("{peer}: upgrade refused with 403: origin {:?} not allowed", request.origin().unwrap_or(""));
            return self.refuse(key, Refusal::Origin, StatusCode::FORBIDDEN, "origin not allowed", now);
        }
        let (protocol, state) =
            match self.handler.upgrade(&Upgrade { request, upgrade: &input.upgrade, peer, bus: &self.shared.bus }) {
                Decision::Accept { protocol, state } => (protocol, state),
                Decision::Refuse { status, reason, headers } => {
                    log::debug!("{peer}: upgrade refused by the handler with {}: {reason}", status.as_u16());
                    if headers.is_empty() {
                        return self.refuse(key, Refusal::Handler, status, &reason, now);
                    }
                    self.shared.counters.count_refusal(Refusal::Handler);
                    let fields: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    let mut response = Vec::new();
                    if let Err(e) = write_error_response_with_headers(status, &fields, &reason, &mut response) {
                        log::warn!("{peer}: the handler's header fields cannot be sent ({e}); answering without them");
                        response.clear();
                        write_error_response(status, &reason, &mut response);
                    }
                    if let Some(slot) = self.sessions.get_mut(key) {
                        slot.session.answer(response, &self.settings, now);
                    }
                    return;
                }
            };
        let Some(slot) = self.sessions.get_mut(key) else { return };
        if let Err(e) = slot.session.accept(&input, protocol, state, &self.settings, now) {
            log::warn!("{peer}: handler's answer to the upgrade is invalid: {e}");
            return;
        }
        let id = SessionId { key, generation: slot.generation };
        self.upgraded += 1;
        let counters = self.counters();
        counters.upgrades.add(1);
        counters.sessions.add(1);
        log::debug!("{peer}: upgraded ({})", input.request.path());
        self.with_context(now, Some(id), |handler, ctx| handler.on_open(ctx, id));
        // Frames that came right behind the request.
        if !input.rest.is_empty() {
            let Some(slot) = self.sessions.get_mut(key) else { return };
            slot.session.lend(&mut self.pool);
            let more = slot.session.handle_read(&mut input.rest, &self.settings, now);
            self.dispatch(key, more, &input.rest, now);
        }
    }

    /// A plain HTTP request with its whole body: the handler answers, then the connection ends.
    fn answer_http(&mut self, key: usize, request: &Request, body: &[u8], now: Instant) {
        let Some(slot) = self.sessions.get(key) else { return };
        let peer = SocketAddr::from(slot.session.peer());
        let id = SessionId { key, generation: slot.generation };
        let mut response = None;
        self.with_context(now, None, |h, ctx| {
            response = Some(h.on_http(ctx, &HttpRequest { request, body, peer, id }));
        });
        log::debug!("{peer}: {} {}", request.method(), request.path());
        self.counters().http_requests.add(1);
        if response.as_ref().is_some_and(HttpResponse::is_later) {
            // The handler answers with Context::respond; the request's deadline still holds.
            return;
        }
        if let Some(slot) = self.sessions.get_mut(key) {
            slot.session.answer(response.map(HttpResponse::into_bytes).unwrap_or_default(), &self.settings, now);
        }
    }

    /// Hands the session's messages to the handler.
    fn dispatch_messages(&mut self, key: usize, bytes: &[u8], now: Instant) {
        let Some(slot) = self.sessions.get(key) else { return };
        let id = SessionId { key, generation: slot.generation };
        // One context for all the messages of the read.
        let (handler, mut ctx) = self.context(now, Some(id));
        let counters = &ctx.shared.counters.loops[ctx.loop_index];
        loop {
            // The handler may have ended the session.
            let Some(slot) = ctx.sessions.get_mut(key).filter(|s| s.generation == id.generation) else { return };
            let Some(received) = slot.session.poll_message(bytes) else { break };
            counters.messages_in.add(1);
            let message = match &received {
                Received::Text(text) => Message::Text(text),
                Received::Binary(data) => Message::Binary(data),
                Received::Event(event) => match &**event {
                    Event::Text(text) => Message::Text(text),
                    Event::Binary(data) => Message::Binary(data),
                    _ => continue,
                },
            };
            handler.on_message(&mut ctx, id, message);
        }
    }

    /// Tells the handler an opened session ended, once; its state goes with it.
    pub(super) fn notify_closed(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.sessions.get_mut(key) else { return };
        let Some(status) = slot.session.take_close_status(now) else { return };
        let id = SessionId { key, generation: slot.generation };
        log::debug!("{}: closed ({})", slot.session.peer(), status.code);
        let counters = self.counters();
        counters.sessions.sub(1);
        counters.count_close(status.code);
        self.with_context(now, None, |h, ctx| h.on_close(ctx, id, status.code, &status.reason));
        if let Some(slot) = self.sessions.get_mut(key) {
            slot.session.drop_state();
        }
        // A closing session leaves all its topics.
        for (topic, last) in self.topics.remove_session(id) {
            self.shared.bus.count_subscriber(self.index, &topic, Membership::Left { last });
        }
        self.counters().subscriptions.set(self.topics.counts().1 as u64);
    }

    /// Runs a handler callback; `current` is the session whose event it handles.
    pub(super) fn with_context(
        &mut self,
        now: Instant,
        current: Option<SessionId>,
        f: impl FnOnce(&mut H, &mut Context<'_, H::State>),
    ) {
        let (handler, mut ctx) = self.context(now, current);
        f(handler, &mut ctx);
    }

    /// The handler, and the context of its callbacks; `current` is the session whose event it handles.
    fn context(&mut self, now: Instant, current: Option<SessionId>) -> (&mut H, Context<'_, H::State>) {
        let ctx = Context {
            sessions: &mut self.sessions,
            to_flush: &mut self.to_flush,
            settings: &self.settings,
            current,
            now,
            loop_index: self.index,
            topics: &mut self.topics,
            pool: &mut self.pool,
            scratch: &mut self.scratch,
            bus: &self.shared.bus,
            shared: &self.shared,
        };
        (&mut self.handler, ctx)
    }
}

//! Arbitrary client bytes through the whole session machine: the HTTP
//! request head and body, the application's decision (fuzz-chosen: accept,
//! refuse, answer), the 101 or the HTTP answer, frames echoed back, the close
//! and the linger, in fuzz-chosen chunks, with fuzz-chosen clock steps and a
//! socket that takes fuzz-chosen amounts. It must never panic, and what the
//! session holds must stay within its limits.
#![no_main]

use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrows::proto::handshake::StatusCode;
use ferrows::proto::{Config, Event, Received};
use ferrows::session::{Expiry, Input, Pool, Session, Settings};
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGE: usize = 16 << 10;
const MAX_OUT: usize = 8 << 10;

/// A socket taking at most `budget` bytes, then `WouldBlock`.
struct Socket {
    budget: usize,
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let wanted: usize = bufs.iter().map(|b| b.len()).sum();
        if self.budget == 0 && wanted > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = wanted.min(self.budget);
        self.budget -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((plan, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mut protocol = Config::default();
    protocol.max_message_size = MAX_MESSAGE;
    protocol.max_frame_size = MAX_MESSAGE;
    protocol.max_fragments = 64;
    protocol.idle_timeout = (plan[3] & 1 != 0).then_some(Duration::from_secs(20));
    let mut settings = Settings::default();
    settings.protocol = Arc::new(protocol);
    settings.max_out_queue = MAX_OUT;
    settings.max_http_body = 2048;
    settings.subprotocols = vec!["chat".into()];
    let mut now = Instant::now();
    let mut session: Session<u8> = Session::new("192.0.2.1:1".parse().unwrap(), &settings, now);
    // The working memory comes from a pool, as in the runtime, on fuzz-chosen steps.
    let mut pool = Pool::default();
    let mut stream = stream.to_vec();
    let (mut pos, mut step) = (0usize, 0usize);
    loop {
        let byte = |i: usize| plan[(step + i) % 4].rotate_left((step / 4) as u32 % 8);
        let rest = stream.len() - pos;
        let size = match (byte(0) & 0x0f) as usize {
            0 => rest,
            n => n * (1 + step % 5),
        }
        .min(rest);
        if byte(1) & 0x40 != 0 {
            session.lend(&mut pool);
        }
        if size > 0 {
            let read = &mut stream[pos..pos + size];
            let input = session.handle_read(read, &settings, now);
            pos += size;
            match input {
                Some(Input::Upgrade(mut upgrade)) => {
                    if byte(1) & 3 == 0 {
                        session.refuse(StatusCode::FORBIDDEN, "no", &settings, now);
                    } else {
                        let protocol = (byte(1) & 4 != 0).then(|| "chat".to_owned());
                        if session.accept(&upgrade, protocol, 0, &settings, now).is_ok() {
                            let _ = session.handle_read(&mut upgrade.rest, &settings, now);
                            echo(&mut session, &upgrade.rest);
                        }
                    }
                }
                Some(Input::Http { body, .. }) => {
                    assert!(body.len() <= settings.max_http_body);
                    session.answer(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), &settings, now);
                }
                Some(Input::BadRequest(_) | Input::Violation(_)) | None => {}
            }
            echo(&mut session, read);
        }
        let _ = session.check_backpressure(&settings);
        // One echo may land on a queue just under the limit; nothing more.
        assert!(session.queued() <= MAX_OUT + MAX_MESSAGE + 4096, "queued {}", session.queued());
        let mut socket = Socket { budget: usize::from(byte(2)) * 64 };
        let _ = session.output().write_to(&mut socket);
        session.give_back(&mut pool);
        if byte(3) & 0x80 != 0 {
            now += Duration::from_millis(u64::from(byte(3) & 0x7f) * 500);
            match session.handle_timeout(now) {
                Expiry::RequestTimedOut | Expiry::Over => return,
                Expiry::GaveUp | Expiry::Ran | Expiry::Pending => {}
            }
        }
        if session.is_finished() {
            if session.closed_cleanly() {
                let _ = session.take_close_status(now);
                return;
            }
            let _ = session.take_close_status(now);
            session.drop_state();
            session.linger(&settings, now);
            assert!(session.wants_read() || session.queued() == 0);
        }
        step += 1;
        // Bytes all fed and nothing left to write: time alone moves it now.
        if pos == stream.len() && step > stream.len() + 64 {
            return;
        }
    }
});

/// The application: echoes every message the last read brought, within the output limit.
fn echo(session: &mut Session<u8>, read: &[u8]) {
    while let Some(message) = session.poll_message(read) {
        if let Some(count) = session.state_mut() {
            *count = count.wrapping_add(1);
        }
        let _ = match message {
            Received::Text(text) => session.send(MAX_OUT, |c| c.send_text(text)),
            Received::Binary(data) => session.send(MAX_OUT, |c| c.send_binary(data)),
            Received::Event(event) => match *event {
                Event::Text(text) => session.send(MAX_OUT, |c| c.send_text(&text)),
                Event::Binary(data) => session.send(MAX_OUT, |c| c.send_binary(&data)),
                _ => Ok(()),
            },
        };
    }
}

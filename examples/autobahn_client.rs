//! The client under the Autobahn testsuite: `wstest -m fuzzingserver` plays
//! the server and this echoes every message it sends.
//!
//! ```text
//! cargo run --release --example autobahn_client -- [ws://127.0.0.1:9002] [agent]
//! ```
//!
//! It asks the server for the number of cases, runs each (echoing text as
//! text and binary as binary until the server closes), then asks it to
//! write its reports. `autobahn/run client` runs it and checks the results.

use std::process::ExitCode;
use std::time::Duration;

use ferrows::client::{Client, ClientBuilder, Error, Message};

fn main() -> ExitCode {
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9002".to_owned());
    let agent = args.next().unwrap_or_else(|| "ferrows".to_owned());
    // Offering permessage-deflate (the default) lets sections 12 and 13 run.
    // The timeout only keeps a broken case from hanging the run.
    let builder = ClientBuilder::new().read_timeout(Some(Duration::from_secs(60)));

    let count = match case_count(&builder, &base) {
        Ok(count) => count,
        Err(e) => {
            eprintln!("autobahn_client: could not get the case count from {base}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("running {count} cases against {base} as {agent}");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match builder.connect(&url) {
            Ok(client) => {
                if let Err(e) = echo(client) {
                    // A case may end the connection any way it likes; the
                    // server's report says whether this was right.
                    log::debug!("case {case}: {e}");
                }
            }
            Err(e) => eprintln!("case {case}: {e}"),
        }
        if case % 50 == 0 || case == count {
            println!("{case}/{count}");
        }
    }
    match update_reports(&builder, &base, &agent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: updating the reports failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends back everything the server sends, until it closes.
fn echo(mut client: Client) -> Result<(), Error> {
    loop {
        match client.recv()? {
            Message::Text(text) => client.send_text(&text)?,
            Message::Binary(data) => client.send_binary(&data)?,
            Message::Pong(_) => {}
            Message::Close(_) => return Ok(()),
        }
    }
}

/// The first text message of `/getCaseCount`, as a number.
fn case_count(builder: &ClientBuilder, base: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let mut client = builder.connect(&format!("{base}/getCaseCount"))?;
    loop {
        match client.recv()? {
            Message::Text(text) => return Ok(text.trim().parse()?),
            Message::Close(_) => return Err("closed before sending the case count".into()),
            _ => {}
        }
    }
}

/// Asks the server to write the reports for `agent`; it closes when done.
fn update_reports(builder: &ClientBuilder, base: &str, agent: &str) -> Result<(), Error> {
    let mut client = builder.connect(&format!("{base}/updateReports?agent={agent}"))?;
    loop {
        if let Message::Close(_) = client.recv()? {
            return Ok(());
        }
    }
}

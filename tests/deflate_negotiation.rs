//! permessage-deflate negotiation (RFC 7692 §5–§7): table tests for every
//! parameter in offers and responses, and a round trip between the client's
//! offer and the server's answer for every combination of settings.
#![cfg(feature = "deflate")]

use ferrows::proto::deflate::negotiate::{
    accept_server_response, client_offer, negotiate_server, DeflateConfig, DeflateNegotiationError as E, DeflateParams,
    DirectionParams,
};
use ferrows::proto::handshake::{parse_extensions, ExtensionOffer};
use ferrows::proto::Role;

fn parse(value: &str) -> Vec<ExtensionOffer> {
    parse_extensions(value.as_bytes()).unwrap_or_else(|e| panic!("{value:?}: {e}"))
}

/// The server's response value to `offers`, or `None` if it declines them all.
fn respond(offers: &str, config: &DeflateConfig) -> Option<String> {
    negotiate_server(&parse(offers), config).map(|(_, response)| response)
}

fn config(edit: impl FnOnce(&mut DeflateConfig)) -> DeflateConfig {
    let mut config = DeflateConfig::default();
    edit(&mut config);
    config
}

fn params(snct: bool, cnct: bool, server_bits: u8, client_bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }
}

/// Runs a table of offers against one server config.
fn check_server_table(config: &DeflateConfig, table: &[(&str, Option<&str>)]) {
    for (offers, expected) in table {
        assert_eq!(respond(offers, config).as_deref(), *expected, "offers {offers:?} with {config:?}");
    }
}

const PMD: &str = "permessage-deflate";

#[test]
fn rfc7692_5_default_config_and_defaults() {
    let config = DeflateConfig::default();
    assert!(config.enabled);
    assert_eq!(config.level, 6);
    assert_eq!((config.server_max_window_bits, config.client_max_window_bits), (15, 15));
    assert!(!config.server_no_context_takeover && !config.client_no_context_takeover);
    assert_eq!(config.min_message_size, 64);

    let (agreed, response) = negotiate_server(&parse(PMD), &config).unwrap();
    assert_eq!(response, PMD);
    assert_eq!(agreed, params(false, false, 15, 15));
}

#[test]
fn a_servers_defaults_reset_its_compressor_and_bound_what_it_keeps_of_the_client() {
    let server = DeflateConfig::server();
    assert_eq!(
        server,
        config(|c| {
            c.server_no_context_takeover = true;
            c.client_max_window_bits = 13;
            c.client_no_context_takeover_fallback = true;
        })
    );
    check_server_table(
        &server,
        &[
            // Chrome, Firefox, Safari, Node's ws, Python's websockets.
            (
                "permessage-deflate; client_max_window_bits",
                Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=13"),
            ),
            // A smaller window offered is kept.
            (
                "permessage-deflate; client_max_window_bits=10",
                Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
            ),
            (
                "permessage-deflate; client_max_window_bits=15",
                Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=13"),
            ),
            // No way to lower the client's window (OkHttp offers this): §7.1.1.2
            // lets the server ask for no context takeover instead.
            ("permessage-deflate", Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")),
            // Gorilla's offer.
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                "permessage-deflate; server_max_window_bits=10",
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     server_max_window_bits=10",
                ),
            ),
        ],
    );
    let (agreed, _) = negotiate_server(&parse("permessage-deflate; client_max_window_bits"), &server).unwrap();
    assert_eq!(agreed, params(true, false, 15, 13));
    let (agreed, _) = negotiate_server(&parse(PMD), &server).unwrap();
    assert_eq!(agreed, params(true, true, 15, 15));
}

#[test]
fn rfc7692_7_1_1_2_the_fallback_asks_no_context_takeover_only_of_an_unbounded_window() {
    let keep = config(|c| {
        c.client_max_window_bits = 13;
        c.client_no_context_takeover_fallback = false;
    });
    let fallback = config(|c| {
        c.client_max_window_bits = 13;
        c.client_no_context_takeover_fallback = true;
    });
    let full_window = config(|c| c.client_no_context_takeover_fallback = true);
    check_server_table(&keep, &[(PMD, Some(PMD))]);
    check_server_table(
        &fallback,
        &[
            (PMD, Some("permessage-deflate; client_no_context_takeover")),
            ("permessage-deflate; client_max_window_bits", Some("permessage-deflate; client_max_window_bits=13")),
        ],
    );
    // A server that keeps 15 bits anyway has nothing to ask.
    check_server_table(&full_window, &[(PMD, Some(PMD))]);
}

#[test]
fn a_server_with_its_defaults_accepts_every_offer_the_rfc_defaults_accept() {
    let offers = [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=8",
        "permessage-deflate; client_max_window_bits=15",
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=15; client_no_context_takeover",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
        "permessage-deflate; x=1, permessage-deflate",
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits=10",
    ];
    let client = DeflateConfig::default();
    for offer in offers {
        let old = negotiate_server(&parse(offer), &DeflateConfig::default());
        let new = negotiate_server(&parse(offer), &DeflateConfig::server());
        assert_eq!(old.is_some(), new.is_some(), "{offer}");
    }
    // Our own client, offering with its defaults, accepts the answer.
    let (params, response) = negotiate_server(&parse(&client_offer(&client)), &DeflateConfig::server()).unwrap();
    assert_eq!(accept_server_response(&parse(&response), &client), Ok(Some(params)));
}

#[test]
fn rfc7692_5_other_extensions_are_skipped() {
    let config = DeflateConfig::default();
    check_server_table(
        &config,
        &[
            ("x-webkit-deflate-frame", None),
            ("x-foo; server_max_window_bits=10", None),
            (
                "x-foo, permessage-deflate; server_max_window_bits=10",
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
            ("permessage-deflate-x, permessage-deflate", Some(PMD)),
        ],
    );
    assert_eq!(negotiate_server(&[], &config), None);
}

#[test]
fn rfc7692_5_first_acceptable_offer_wins() {
    check_server_table(
        &DeflateConfig::default(),
        &[
            (
                "permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=12",
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
            ("permessage-deflate, permessage-deflate; server_no_context_takeover", Some(PMD)),
        ],
    );
}

#[test]
fn rfc7692_5_disabled_config_accepts_nothing() {
    let disabled = config(|c| c.enabled = false);
    assert_eq!(respond(PMD, &disabled), None);
    assert_eq!(respond("permessage-deflate; client_max_window_bits", &disabled), None);
}

#[test]
fn rfc7692_5_extension_and_parameter_names_ignore_case() {
    check_server_table(
        &DeflateConfig::default(),
        &[
            ("PerMessage-Deflate; Server_No_Context_Takeover", Some("permessage-deflate; server_no_context_takeover")),
            ("permessage-deflate; SERVER_MAX_WINDOW_BITS=11", Some("permessage-deflate; server_max_window_bits=11")),
            // A repeat in another case is still a repeat (RFC 7692 §7).
            ("permessage-deflate; client_no_context_takeover; CLIENT_NO_CONTEXT_TAKEOVER", None),
        ],
    );
}

#[test]
fn rfc7692_7_1_1_1_server_no_context_takeover() {
    let (agreed, response) =
        negotiate_server(&parse("permessage-deflate; server_no_context_takeover"), &DeflateConfig::default()).unwrap();
    assert_eq!(response, "permessage-deflate; server_no_context_takeover");
    assert_eq!(agreed, params(true, false, 15, 15));

    // The server may reset its context even when not asked.
    let own = config(|c| c.server_no_context_takeover = true);
    let (agreed, response) = negotiate_server(&parse(PMD), &own).unwrap();
    assert_eq!(response, "permessage-deflate; server_no_context_takeover");
    assert_eq!(agreed, params(true, false, 15, 15));
    check_server_table(
        &own,
        &[("permessage-deflate; server_no_context_takeover", Some("permessage-deflate; server_no_context_takeover"))],
    );
}

#[test]
fn rfc7692_7_1_1_2_client_no_context_takeover() {
    // Offered: the client resets anyway; the server says so back.
    let (agreed, response) =
        negotiate_server(&parse("permessage-deflate; client_no_context_takeover"), &DeflateConfig::default()).unwrap();
    assert_eq!(response, "permessage-deflate; client_no_context_takeover");
    assert_eq!(agreed, params(false, true, 15, 15));

    // Not offered: the server may still ask for it.
    let own = config(|c| c.client_no_context_takeover = true);
    let (agreed, response) = negotiate_server(&parse(PMD), &own).unwrap();
    assert_eq!(response, "permessage-deflate; client_no_context_takeover");
    assert_eq!(agreed, params(false, true, 15, 15));
}

#[test]
fn rfc7692_7_1_1_no_context_takeover_takes_no_value() {
    let config = DeflateConfig::default();
    for offer in [
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_no_context_takeover=\"x\"",
    ] {
        assert_eq!(respond(offer, &config), None, "{offer}");
        // Declined, so the next offer is taken.
        assert_eq!(respond(&format!("{offer}, {PMD}"), &config).as_deref(), Some(PMD), "{offer}");
    }
}

#[test]
fn rfc7692_7_1_2_1_server_max_window_bits() {
    let default = DeflateConfig::default();
    let limited = config(|c| c.server_max_window_bits = 12);
    let smwb = |bits: u8| format!("permessage-deflate; server_max_window_bits={bits}");
    for offered in 9..=15u8 {
        // The same or a smaller value than offered, and never above our limit.
        let (agreed, response) = negotiate_server(&parse(&smwb(offered)), &default).unwrap();
        assert_eq!((agreed.server_max_window_bits, response), (offered, smwb(offered)));
        let expected = offered.min(12);
        let (agreed, response) = negotiate_server(&parse(&smwb(offered)), &limited).unwrap();
        assert_eq!((agreed.server_max_window_bits, response), (expected, smwb(expected)));
    }
}

#[test]
fn rfc7692_7_1_2_1_server_limits_its_own_window() {
    // Not offered: a server configured below 15 says so in the response.
    for bits in 9..=14u8 {
        let own = config(|c| c.server_max_window_bits = bits);
        let (agreed, response) = negotiate_server(&parse(PMD), &own).unwrap();
        assert_eq!(response, format!("permessage-deflate; server_max_window_bits={bits}"));
        assert_eq!(agreed, params(false, false, bits, 15));
        assert_eq!(agreed.for_role(Role::Server).compress_window_bits, bits);
    }
    let (agreed, response) = negotiate_server(&parse(PMD), &config(|c| c.server_max_window_bits = 15)).unwrap();
    assert_eq!((agreed.server_max_window_bits, response.as_str()), (15, PMD));
}

#[test]
fn rfc7692_7_1_2_1_server_window_of_8_is_declined() {
    // zlib cannot compress raw deflate with a 256-byte window.
    let config = DeflateConfig::default();
    check_server_table(
        &config,
        &[
            ("permessage-deflate; server_max_window_bits=8", None),
            ("permessage-deflate; server_max_window_bits=8, permessage-deflate", Some(PMD)),
            (
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9",
                Some("permessage-deflate; server_max_window_bits=9"),
            ),
        ],
    );
}

#[test]
fn rfc7692_7_1_2_1_server_max_window_bits_needs_a_value() {
    check_server_table(
        &DeflateConfig::default(),
        &[
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_max_window_bits, permessage-deflate", Some(PMD)),
        ],
    );
}

#[test]
fn rfc7692_7_1_2_2_client_max_window_bits() {
    let default = DeflateConfig::default();
    let limited = config(|c| c.client_max_window_bits = 10);
    let table: &[(&str, &DeflateConfig, Option<&str>, u8)] = &[
        // Not offered: never in the response, and the client's window is 15.
        (PMD, &default, Some(PMD), 15),
        (PMD, &limited, Some(PMD), 15),
        // Offered bare: the server may limit the client.
        ("permessage-deflate; client_max_window_bits", &default, Some(PMD), 15),
        (
            "permessage-deflate; client_max_window_bits",
            &limited,
            Some("permessage-deflate; client_max_window_bits=10"),
            10,
        ),
        // Offered with a value: echoed, lowered to our limit.
        (
            "permessage-deflate; client_max_window_bits=12",
            &default,
            Some("permessage-deflate; client_max_window_bits=12"),
            12,
        ),
        (
            "permessage-deflate; client_max_window_bits=12",
            &limited,
            Some("permessage-deflate; client_max_window_bits=10"),
            10,
        ),
        (
            "permessage-deflate; client_max_window_bits=9",
            &limited,
            Some("permessage-deflate; client_max_window_bits=9"),
            9,
        ),
        (
            "permessage-deflate; client_max_window_bits=15",
            &default,
            Some("permessage-deflate; client_max_window_bits=15"),
            15,
        ),
    ];
    for (offer, config, expected, client_bits) in table {
        let result = negotiate_server(&parse(offer), config);
        assert_eq!(result.as_ref().map(|(_, r)| r.as_str()), *expected, "{offer} with {config:?}");
        if let Some((agreed, _)) = result {
            assert_eq!(agreed.client_max_window_bits, *client_bits, "{offer} with {config:?}");
            assert_eq!(agreed.for_role(Role::Server).inflate_window_bits, *client_bits);
        }
    }
}

#[test]
fn rfc7692_7_1_2_2_client_window_of_8_is_accepted_for_inflation() {
    // The client compresses with 256 bytes; the server inflates with a larger
    // window, which covers it. The agreed value stays 8.
    let (agreed, response) =
        negotiate_server(&parse("permessage-deflate; client_max_window_bits=8"), &DeflateConfig::default()).unwrap();
    assert_eq!(response, "permessage-deflate; client_max_window_bits=8");
    assert_eq!(agreed, params(false, false, 15, 8));
    assert_eq!(agreed.for_role(Role::Server).inflate_window_bits, 8);
    assert_eq!(agreed.for_role(Role::Client).compress_window_bits, 8);
}

#[test]
fn rfc7692_7_unknown_parameter_is_declined() {
    let config = DeflateConfig::default();
    for offer in [
        "permessage-deflate; x",
        "permessage-deflate; mux",
        "permessage-deflate; client_max_window_bits; level=9",
        "permessage-deflate; max_window_bits=10",
        "permessage-deflate; server_max_window_bit=10",
    ] {
        assert_eq!(respond(offer, &config), None, "{offer}");
        let next = format!("{offer}, permessage-deflate; client_no_context_takeover");
        assert_eq!(respond(&next, &config).as_deref(), Some("permessage-deflate; client_no_context_takeover"));
    }
}

#[test]
fn rfc7692_7_repeated_parameter_is_declined() {
    let config = DeflateConfig::default();
    for offer in [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=12",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
    ] {
        assert_eq!(respond(offer, &config), None, "{offer}");
        assert_eq!(respond(&format!("{offer}, {PMD}"), &config).as_deref(), Some(PMD), "{offer}");
    }
}

#[test]
fn rfc7692_7_1_2_invalid_window_bits_are_declined() {
    let config = DeflateConfig::default();
    for value in [
        "0",
        "7",
        "16",
        "08",
        "010",
        "+9",
        "-9",
        "9a",
        "0x9",
        "1e1",
        "1.0",
        "255",
        "256",
        "4294967306",
        "99999999999",
        "\"\\+10\"",
    ] {
        for param in ["server_max_window_bits", "client_max_window_bits"] {
            let offer = format!("permessage-deflate; {param}={value}");
            assert_eq!(respond(&offer, &config), None, "{offer}");
            assert_eq!(respond(&format!("{offer}, {PMD}"), &config).as_deref(), Some(PMD), "{offer}");
        }
    }
}

#[test]
fn rfc7692_7_quoted_values_are_accepted() {
    // RFC 6455 §9.1: a quoted value is the token it holds.
    check_server_table(
        &DeflateConfig::default(),
        &[
            (
                "permessage-deflate; server_max_window_bits=\"10\"",
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
            ("permessage-deflate; client_max_window_bits=\"9\"", Some("permessage-deflate; client_max_window_bits=9")),
            (
                "permessage-deflate; server_max_window_bits=\"1\\1\"; client_max_window_bits=\"12\"",
                Some("permessage-deflate; server_max_window_bits=11; client_max_window_bits=12"),
            ),
            ("permessage-deflate; server_max_window_bits=\"010\"", None),
        ],
    );
}

#[test]
fn rfc7692_7_response_lists_parameters_in_a_fixed_order() {
    let offer = "permessage-deflate; client_max_window_bits=10; server_max_window_bits=11; \
                 client_no_context_takeover; server_no_context_takeover";
    let (agreed, response) = negotiate_server(&parse(offer), &DeflateConfig::default()).unwrap();
    assert_eq!(
        response,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=11; client_max_window_bits=10"
    );
    assert_eq!(agreed, params(true, true, 11, 10));
}

#[test]
fn rfc7692_7_params_for_each_role() {
    let agreed = params(true, false, 10, 12);
    assert_eq!(
        agreed.for_role(Role::Server),
        DirectionParams {
            compress_window_bits: 10,
            compress_no_context_takeover: true,
            inflate_window_bits: 12,
            inflate_no_context_takeover: false,
        }
    );
    assert_eq!(
        agreed.for_role(Role::Client),
        DirectionParams {
            compress_window_bits: 12,
            compress_no_context_takeover: false,
            inflate_window_bits: 10,
            inflate_no_context_takeover: true,
        }
    );
}

#[test]
fn rfc7692_7_config_window_bits_out_of_range_are_clamped() {
    // 8 is below what zlib compresses with; above 15 is no window at all.
    let odd = config(|c| {
        c.server_max_window_bits = 8;
        c.client_max_window_bits = 200;
    });
    assert_eq!(client_offer(&odd), "permessage-deflate; server_max_window_bits=9; client_max_window_bits");
    let (agreed, response) = negotiate_server(&parse("permessage-deflate; client_max_window_bits"), &odd).unwrap();
    assert_eq!(response, "permessage-deflate; server_max_window_bits=9");
    assert_eq!(agreed, params(false, false, 9, 15));
    let tiny = config(|c| c.client_max_window_bits = 0);
    let (agreed, _) = negotiate_server(&parse("permessage-deflate; client_max_window_bits"), &tiny).unwrap();
    assert_eq!(agreed.client_max_window_bits, 9);
}

#[test]
fn rfc7692_7_client_offer_strings() {
    let table: &[(DeflateConfig, &str)] = &[
        (DeflateConfig::default(), "permessage-deflate; client_max_window_bits"),
        (config(|c| c.client_max_window_bits = 10), "permessage-deflate; client_max_window_bits=10"),
        (
            config(|c| c.server_max_window_bits = 9),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits",
        ),
        (
            config(|c| c.server_no_context_takeover = true),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits",
        ),
        (
            config(|c| c.client_no_context_takeover = true),
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
        ),
        (
            config(|c| {
                c.server_no_context_takeover = true;
                c.client_no_context_takeover = true;
                c.server_max_window_bits = 12;
                c.client_max_window_bits = 11;
            }),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=11",
        ),
        // The codec's own settings are not negotiated.
        (
            config(|c| {
                c.level = 1;
                c.min_message_size = 0;
            }),
            "permessage-deflate; client_max_window_bits",
        ),
    ];
    for (config, expected) in table {
        let offer = client_offer(config);
        assert_eq!(offer, *expected);
        // Every offer parses back as one permessage-deflate element.
        assert_eq!(parse(&offer).len(), 1);
    }
}

#[test]
fn rfc7692_7_client_accepts_valid_responses() {
    let default = DeflateConfig::default();
    let asks = config(|c| {
        c.server_max_window_bits = 12;
        c.client_max_window_bits = 11;
        c.server_no_context_takeover = true;
    });
    let resets = config(|c| c.client_no_context_takeover = true);
    let table: &[(&str, &DeflateConfig, DeflateParams)] = &[
        (PMD, &default, params(false, false, 15, 15)),
        // The server may reset its context or limit its window unasked (§7.1.1.1, §7.1.2.1).
        ("permessage-deflate; server_no_context_takeover", &default, params(true, false, 15, 15)),
        ("permessage-deflate; server_max_window_bits=10", &default, params(false, false, 10, 15)),
        // A server window of 8 is fine: we inflate with a larger one.
        ("permessage-deflate; server_max_window_bits=8", &default, params(false, false, 8, 15)),
        // The server limits our window or our context (§7.1.1.2, §7.1.2.2).
        ("permessage-deflate; client_max_window_bits=9", &default, params(false, false, 15, 9)),
        ("permessage-deflate; client_max_window_bits=15", &default, params(false, false, 15, 15)),
        ("permessage-deflate; client_no_context_takeover", &default, params(false, true, 15, 15)),
        // Our own reset applies whatever the server says.
        (PMD, &resets, params(false, true, 15, 15)),
        // What we asked for, or less.
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            &asks,
            params(true, false, 12, 11),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10",
            &asks,
            params(true, false, 9, 10),
        ),
        (
            "permessage-deflate; server_max_window_bits=\"12\"; server_no_context_takeover",
            &asks,
            params(true, false, 12, 11),
        ),
        // Other extensions are the handshake's business.
        ("x-foo, permessage-deflate; client_max_window_bits=12, x-bar", &default, params(false, false, 15, 12)),
    ];
    for (response, config, expected) in table {
        assert_eq!(accept_server_response(&parse(response), config), Ok(Some(*expected)), "{response}");
    }
}

#[test]
fn rfc7692_5_client_without_deflate_in_response() {
    let config = DeflateConfig::default();
    assert_eq!(accept_server_response(&[], &config), Ok(None));
    assert_eq!(accept_server_response(&parse("x-foo; a=1"), &config), Ok(None));
    assert_eq!(accept_server_response(&[], &self::config(|c| c.enabled = false)), Ok(None));
}

#[test]
fn rfc7692_7_client_rejects_invalid_responses() {
    let default = DeflateConfig::default();
    let asks = config(|c| {
        c.server_max_window_bits = 12;
        c.client_max_window_bits = 11;
        c.server_no_context_takeover = true;
    });
    let disabled = config(|c| c.enabled = false);
    let invalid = |parameter: &'static str, value: &str| E::InvalidWindowBits { parameter, value: value.into() };
    let table: &[(&str, &DeflateConfig, E)] = &[
        // §5: one PMCE element at most, and only if offered.
        ("permessage-deflate, permessage-deflate", &default, E::MultipleResponses),
        (PMD, &disabled, E::NotOffered),
        // §7: parameters not defined, repeated, or with invalid values.
        ("permessage-deflate; x", &default, E::UnknownParameter("x".into())),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", &default, {
            E::RepeatedParameter("server_no_context_takeover")
        }),
        ("permessage-deflate; client_max_window_bits=9; client_max_window_bits=9", &default, {
            E::RepeatedParameter("client_max_window_bits")
        }),
        (
            "permessage-deflate; server_no_context_takeover=1",
            &default,
            E::UnexpectedValue("server_no_context_takeover"),
        ),
        (
            "permessage-deflate; client_no_context_takeover=1",
            &default,
            E::UnexpectedValue("client_no_context_takeover"),
        ),
        ("permessage-deflate; server_max_window_bits", &default, E::MissingValue("server_max_window_bits")),
        // §7.1.2.2: a response limits the client's window, so it names a value.
        ("permessage-deflate; client_max_window_bits", &default, E::MissingValue("client_max_window_bits")),
        ("permessage-deflate; server_max_window_bits=16", &default, invalid("server_max_window_bits", "16")),
        ("permessage-deflate; server_max_window_bits=09", &default, invalid("server_max_window_bits", "09")),
        ("permessage-deflate; client_max_window_bits=7", &default, invalid("client_max_window_bits", "7")),
        ("permessage-deflate; client_max_window_bits=\"+9\"", &default, invalid("client_max_window_bits", "+9")),
        // §7.1.2.1: the server's window must not exceed the offered one, and
        // an offered limit must be answered.
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=13",
            &asks,
            E::ServerWindowTooLarge { offered: 12, accepted: 13 },
        ),
        ("permessage-deflate; server_no_context_takeover", &asks, E::ServerWindowMissing { offered: 12 }),
        // §7.1.1.1: an offered server_no_context_takeover must be answered.
        ("permessage-deflate; server_max_window_bits=12", &asks, E::ServerContextTakeoverKept),
        // §7.1.2.2: the client's window must not exceed the offered one.
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12",
            &asks,
            E::ClientWindowTooLarge { offered: 11, accepted: 12 },
        ),
        // §7: a configuration the client cannot use (zlib cannot compress with 8).
        ("permessage-deflate; client_max_window_bits=8", &default, E::ClientWindowUnsupported { bits: 8 }),
    ];
    for (response, config, expected) in table {
        let result = accept_server_response(&parse(response), config);
        assert_eq!(result.as_ref(), Err(expected), "{response}");
        assert!(!expected.to_string().is_empty());
    }
}

/// Every combination of the negotiated settings, on one side.
fn all_configs() -> Vec<DeflateConfig> {
    let mut configs = Vec::new();
    for server_bits in 9..=15 {
        for client_bits in 9..=15 {
            for flags in 0..4 {
                configs.push(config(|c| {
                    c.server_max_window_bits = server_bits;
                    c.client_max_window_bits = client_bits;
                    c.server_no_context_takeover = flags & 1 != 0;
                    c.client_no_context_takeover = flags & 2 != 0;
                }));
            }
        }
    }
    configs
}

#[test]
fn rfc7692_7_round_trip_client_offer_server_response() {
    let configs = all_configs();
    let server_defaults = DeflateConfig::server();
    for client in &configs {
        let offers = parse(&client_offer(client));
        for server in configs.iter().chain([&server_defaults]) {
            let Some((server_params, response)) = negotiate_server(&offers, server) else {
                panic!("server {server:?} declined the offer of {client:?}");
            };
            let client_params = accept_server_response(&parse(&response), client)
                .unwrap_or_else(|e| panic!("{response:?} rejected by {client:?}: {e}"));
            assert_eq!(client_params, Some(server_params), "{response:?}");

            // Each side's limits hold.
            let p = server_params;
            assert!(p.server_max_window_bits <= client.server_max_window_bits.min(server.server_max_window_bits));
            assert!(p.client_max_window_bits <= client.client_max_window_bits.min(server.client_max_window_bits));
            assert!(p.server_max_window_bits >= 9 && p.client_max_window_bits >= 9);
            assert_eq!(
                p.server_no_context_takeover,
                client.server_no_context_takeover || server.server_no_context_takeover
            );
            assert_eq!(
                p.client_no_context_takeover,
                client.client_no_context_takeover || server.client_no_context_takeover
            );
            // And the two roles see mirror images.
            let (s, c) = (p.for_role(Role::Server), p.for_role(Role::Client));
            assert_eq!(
                (s.compress_window_bits, s.compress_no_context_takeover),
                (c.inflate_window_bits, c.inflate_no_context_takeover)
            );
            assert_eq!(
                (c.compress_window_bits, c.compress_no_context_takeover),
                (s.inflate_window_bits, s.inflate_no_context_takeover)
            );
        }
    }
}

#[test]
fn rfc7692_7_round_trip_common_browser_offers() {
    // Offers as browsers and common clients send them, answered by a range of
    // servers: the server's answer is one a matching client would accept.
    let offers = [
        ("permessage-deflate; client_max_window_bits", DeflateConfig::default()),
        ("permessage-deflate", DeflateConfig::default()),
        (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            config(|c| {
                c.server_max_window_bits = 12;
                c.client_max_window_bits = 12;
            }),
        ),
    ];
    for (offer, client) in &offers {
        for server in all_configs() {
            let (server_params, response) = negotiate_server(&parse(offer), &server).unwrap();
            if offer.contains("client_max_window_bits") {
                // A client that offered this parameter checks the answer as ours does.
                assert_eq!(accept_server_response(&parse(&response), client), Ok(Some(server_params)));
            } else {
                // §7.1.2.2: no client_max_window_bits in the answer to an offer without it.
                assert!(!response.contains("client_max_window_bits"), "{response}");
                assert_eq!(server_params.client_max_window_bits, 15);
            }
        }
    }
}

//! The JSON pub/sub protocol's codec: requests parsed into typed values, every
//! error code, `data` and ids passed through byte for byte, topic limits, and
//! the encoded server messages read back as JSON.

use ferrows::app::pubsub_protocol::{
    encode_ack_ping, encode_ack_publish, encode_ack_subscribe, encode_ack_unsubscribe, encode_delivery, encode_error,
    not_text_error, parse_request, ErrorCode, Id, ProtocolLimits, Request, RequestError, Topics,
};
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{json, Value};

fn parse(text: &str) -> Result<Request<'_>, RequestError<'_>> {
    parse_request(text, &ProtocolLimits::default())
}

fn id(json: &'static str) -> Option<Id<'static>> {
    Some(Id::from_json(json).expect("a number or a string"))
}

fn topics(names: &[&'static str]) -> Topics<'static> {
    names.iter().copied().collect()
}

fn raw(json: &str) -> &'static RawValue {
    Box::leak(RawValue::from_string(json.to_owned()).expect("valid JSON"))
}

fn sub(id: Option<Id<'static>>, names: &[&'static str]) -> Request<'static> {
    Request::Subscribe { id, topics: topics(names), since: Default::default() }
}

fn unsub(id: Option<Id<'static>>, names: &[&'static str]) -> Request<'static> {
    Request::Unsubscribe { id, topics: topics(names) }
}

fn publish(id: Option<Id<'static>>, names: &[&'static str], data: &str, exclude_self: bool) -> Request<'static> {
    Request::Publish { id, topics: topics(names), data: raw(data), exclude_self }
}

fn as_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn publish_data(text: &str) -> &RawValue {
    match parse(text) {
        Ok(Request::Publish { data, .. }) => data,
        other => panic!("not a publish: {other:?}"),
    }
}

#[test]
fn requests_parse_into_typed_values() {
    let table: Vec<(&str, Request)> = vec![
        (r#"{"op":"subscribe","topics":["a","b"],"id":7}"#, sub(id("7"), &["a", "b"])),
        (r#"{"op":"subscribe","topics":["a"]}"#, sub(None, &["a"])),
        (r#"{"op":"subscribe","topic":"a","id":"s1"}"#, sub(id(r#""s1""#), &["a"])),
        (r#"{"op":"unsubscribe","topics":["a"],"id":8}"#, unsub(id("8"), &["a"])),
        (r#"{"op":"unsubscribe","topic":"a"}"#, unsub(None, &["a"])),
        (
            r#"{"op":"publish","topics":["a","b"],"data":{"x":1},"id":9}"#,
            publish(id("9"), &["a", "b"], r#"{"x":1}"#, false),
        ),
        (r#"{"op":"publish","topic":"a","data":"hi"}"#, publish(None, &["a"], r#""hi""#, false)),
        (r#"{"op":"publish","topic":"a","data":null}"#, publish(None, &["a"], "null", false)),
        (r#"{"op":"publish","topic":"a","data":[],"exclude_self":true}"#, publish(None, &["a"], "[]", true)),
        (r#"{"op":"publish","topic":"a","data":0,"exclude_self":false}"#, publish(None, &["a"], "0", false)),
        (r#"{"op":"publish","topic":"a","data":0,"exclude_self":null}"#, publish(None, &["a"], "0", false)),
        (r#"{"op":"ping","id":10}"#, Request::Ping { id: id("10") }),
        (r#"{"op":"ping"}"#, Request::Ping { id: None }),
        (r#"{"op":"ping","id":null}"#, Request::Ping { id: None }),
        // Fields are read in any order; unknown ones are ignored, nested or not.
        (r#"{"id":1,"v":2,"topics":["a"],"extra":{"deep":[1,{"x":null}]},"op":"subscribe"}"#, sub(id("1"), &["a"])),
        // Fields another op reads are ignored by this one.
        (r#"{"op":"ping","topics":[1,2],"data":3,"exclude_self":"?"}"#, Request::Ping { id: None }),
        (r#"{"op":"subscribe","topics":["a"],"data":1,"exclude_self":7}"#, sub(None, &["a"])),
        // A null field counts as absent.
        (r#"{"op":"subscribe","topics":["a"],"topic":null}"#, sub(None, &["a"])),
        (r#"{"op":"subscribe","topics":null,"topic":"a"}"#, sub(None, &["a"])),
        // JSON escapes in keys, values and topic names are decoded.
        (r#"{"o\u0070":"p\u0069ng"}"#, Request::Ping { id: None }),
        (r#"{"op":"subscribe","topics":["caf\u00e9","a\/b","\ud83d\ude00"]}"#, sub(None, &["café", "a/b", "😀"])),
        // Whitespace around and between tokens.
        (" \t\r\n{ \"op\" : \"ping\" , \"id\" : 3 } \n", Request::Ping { id: id("3") }),
        // Duplicates collapse, keeping the order of first occurrence.
        (r#"{"op":"subscribe","topics":["b","a","b","c","a"]}"#, sub(None, &["b", "a", "c"])),
        (r#"{"op":"publish","topics":["a","\u0061"],"data":1}"#, publish(None, &["a"], "1", false)),
    ];
    for (text, expected) in table {
        assert_eq!(parse(text), Ok(expected), "{text}");
    }
}

#[test]
fn request_id_accessor() {
    assert_eq!(parse(r#"{"op":"ping","id":"x"}"#).unwrap().id(), id(r#""x""#));
    assert_eq!(parse(r#"{"op":"subscribe","topic":"t"}"#).unwrap().id(), None);
}

#[test]
fn every_error_code() {
    let long = format!(r#"{{"op":"subscribe","topic":"{}","id":4}}"#, "x".repeat(257));
    let many = format!(r#"{{"op":"subscribe","topics":[{}],"id":5}}"#, vec![r#""t""#; 65].join(","));
    let table: Vec<(&str, ErrorCode, Option<&str>)> = vec![
        // Not JSON, not an object, or not one JSON value: no id can be read.
        ("", ErrorCode::BadJson, None),
        ("   ", ErrorCode::BadJson, None),
        ("hello", ErrorCode::BadJson, None),
        (r#"{"op":"ping""#, ErrorCode::BadJson, None),
        (r#"{"op":"ping",}"#, ErrorCode::BadJson, None),
        (r#"{"op":"ping","id":1} {}"#, ErrorCode::BadJson, None),
        (r#"{"op":"ping","id":1,"id":2}"#, ErrorCode::BadJson, None),
        (r#"{"op":"ping","id":01}"#, ErrorCode::BadJson, None),
        (r#"["ping"]"#, ErrorCode::BadJson, None),
        (r#""ping""#, ErrorCode::BadJson, None),
        ("42", ErrorCode::BadJson, None),
        ("null", ErrorCode::BadJson, None),
        (r#"{"op":"ping","id":true}"#, ErrorCode::BadJson, None),
        (r#"{"op":"ping","id":{"n":1}}"#, ErrorCode::BadJson, None),
        (r#"{"op":"ping","id":[1]}"#, ErrorCode::BadJson, None),
        // A field of the wrong type, once the id is known.
        (r#"{"op":"publish","topic":"a","data":1,"exclude_self":"yes","id":6}"#, ErrorCode::BadJson, Some("6")),
        (r#"{"op":"publish","topic":"a","data":1,"exclude_self":1,"id":6}"#, ErrorCode::BadJson, Some("6")),
        // The op.
        (r#"{"op":"fly","id":1}"#, ErrorCode::UnknownOp, Some("1")),
        (r#"{"op":"Subscribe","topics":["a"],"id":1}"#, ErrorCode::UnknownOp, Some("1")),
        (r#"{"op":"","id":"q"}"#, ErrorCode::UnknownOp, Some(r#""q""#)),
        (r#"{"op":7,"id":1}"#, ErrorCode::UnknownOp, Some("1")),
        (r#"{"op":null,"id":1}"#, ErrorCode::UnknownOp, Some("1")),
        (r#"{"topics":["a"],"id":1}"#, ErrorCode::UnknownOp, Some("1")),
        ("{}", ErrorCode::UnknownOp, None),
        // Topics missing.
        (r#"{"op":"subscribe","id":2}"#, ErrorCode::MissingTopic, Some("2")),
        (r#"{"op":"unsubscribe","topics":[],"id":2}"#, ErrorCode::MissingTopic, Some("2")),
        (r#"{"op":"publish","topics":null,"data":1,"id":2}"#, ErrorCode::MissingTopic, Some("2")),
        (r#"{"op":"publish","data":1}"#, ErrorCode::MissingTopic, None),
        // Topics malformed.
        (r#"{"op":"subscribe","topics":"a","id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":{"a":1},"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":["a",1],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":[["a"]],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":[null],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":["a",""],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"publish","topic":5,"data":1,"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"publish","topic":"","data":1,"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":["a"],"topic":"b","id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":["a\nb"],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":["a\u0000"],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":["\u007f"],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        (r#"{"op":"subscribe","topics":["\u0085"],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        // JSON's grammar allows a lone surrogate; a topic name cannot hold one.
        (r#"{"op":"subscribe","topics":["\ud800"],"id":3}"#, ErrorCode::BadTopic, Some("3")),
        ("{\"op\":\"subscribe\",\"topics\":[\"tab\there\"],\"id\":3}", ErrorCode::BadJson, None),
        (&long, ErrorCode::BadTopic, Some("4")),
        // Too many topics.
        (&many, ErrorCode::TooManyTopics, Some("5")),
        // Publish without data.
        (r#"{"op":"publish","topic":"a","id":9}"#, ErrorCode::MissingData, Some("9")),
        (r#"{"op":"publish","topics":["a","b"]}"#, ErrorCode::MissingData, None),
    ];
    for (text, code, expected_id) in table {
        let err = parse(text).expect_err(text);
        assert_eq!(err.code, code, "{text}: {err}");
        assert_eq!(err.id.as_ref().map(Id::as_json), expected_id, "{text}");
        assert!(!err.message.is_empty());
        let encoded = as_value(&encode_error(&err));
        assert_eq!(encoded["type"], "error");
        assert_eq!(encoded["code"], code.as_str());
    }

    let err = not_text_error();
    assert_eq!((err.code, err.id.as_ref()), (ErrorCode::NotText, None));
    assert_eq!(as_value(&encode_error(&err))["code"], "not_text");
}

#[test]
fn error_codes_on_the_wire() {
    let codes = [
        (ErrorCode::BadJson, "bad_json"),
        (ErrorCode::UnknownOp, "unknown_op"),
        (ErrorCode::MissingTopic, "missing_topic"),
        (ErrorCode::BadTopic, "bad_topic"),
        (ErrorCode::TooManyTopics, "too_many_topics"),
        (ErrorCode::NotText, "not_text"),
        (ErrorCode::MissingData, "missing_data"),
    ];
    for (code, wire) in codes {
        assert_eq!(code.as_str(), wire);
        assert_eq!(code.to_string(), wire);
    }
}

#[test]
fn error_messages_never_quote_the_input() {
    let secret = "zzz-client-text-zzz";
    let inputs = [
        format!(r#"{{"op":"{secret}"}}"#),
        format!(r#"{{"op":"subscribe","topics":["{secret}\n"]}}"#),
        format!(r#"{{"op":"subscribe","topic":"{}{secret}"}}"#, "x".repeat(300)),
        format!(r#"{{"op":"publish","topic":"a","data":1,"exclude_self":"{secret}"}}"#),
        format!(r#"{{"op":"ping","id":{{"{secret}":1}}}}"#),
        format!(r#"{{"{secret}":1,"op":"ping","id":[}}"#),
    ];
    for text in inputs {
        let err = parse(&text).expect_err(&text);
        assert!(!encode_error(&err).contains(secret), "{text} -> {err}");
    }
}

#[test]
fn data_passes_through_byte_for_byte() {
    let values = [
        "null",
        "true",
        "0",
        "-0.0",
        "12345678901234567890",
        "123456789012345678901234567890e-5",
        "1.0E+400",
        r#""text with \"quotes\", \\ and \u00e9 \ud83d\ude00""#,
        r#"{ "b" : 2,  "a" : [1, 2.50, {"z":null,"y":  true}] }"#,
        "[\n  1,\n\t2\r\n]",
        r#"{"same":1,"same":2}"#,
        "{}",
        "[]",
        // Passed on untouched, like any other string the client sends.
        r#""\ud800""#,
    ];
    for data in values {
        let text = format!(r#"{{"op":"publish","topic":"t","data":{data},"id":1}}"#);
        let parsed = publish_data(&text);
        assert_eq!(parsed.get(), data);
        let delivery = encode_delivery("t", parsed.get());
        assert_eq!(delivery, format!(r#"{{"type":"message","topic":"t","data":{data}}}"#));
        assert!(delivery.contains(data));
    }
    // Leading and trailing whitespace around the value is not part of it.
    assert_eq!(publish_data(r#"{"op":"publish","topic":"t","data":   [1, 2]   }"#).get(), "[1, 2]");
}

#[test]
fn deep_nesting_in_data_or_ignored_fields_is_carried_without_recursion() {
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let text = format!(r#"{{"op":"publish","topic":"t","data":{deep},"ignored":{deep}}}"#);
    assert_eq!(publish_data(&text).get(), deep);

    let unbalanced = format!(r#"{{"op":"publish","topic":"t","data":{}}}"#, "[".repeat(depth));
    assert_eq!(parse(&unbalanced).unwrap_err().code, ErrorCode::BadJson);
    let deep_topics = format!(r#"{{"op":"subscribe","topics":{deep},"id":1}}"#);
    assert_eq!(parse(&deep_topics).unwrap_err().code, ErrorCode::BadTopic);
}

#[test]
fn ids_are_echoed_verbatim() {
    let ids = [
        "7",
        "0",
        "-0",
        "-12",
        "1.50",
        "1e3",
        "1.5E-300",
        "12345678901234567890",
        "123456789012345678901234567890.5",
        r#""abc""#,
        r#""""#,
        r#""caf\u00e9""#,
        r#""line\nbreak \"quoted\" \\ \/""#,
        r#""日本""#,
    ];
    for raw_id in ids {
        let expected = id(raw_id);
        assert_eq!(expected.as_ref().map(Id::as_json), Some(raw_id));
        assert_eq!(expected.as_ref().map(ToString::to_string).as_deref(), Some(raw_id));

        let ping_text = format!(r#"{{"op":"ping","id":{raw_id}}}"#);
        let ping = parse(&ping_text).unwrap();
        assert_eq!(ping, Request::Ping { id: expected });
        let needle = format!(r#""id":{raw_id}"#);
        let id = ping.id();
        let sub = topics(&["a"]);
        for encoded in [
            encode_ack_ping(id),
            encode_ack_subscribe(id, &sub),
            encode_ack_unsubscribe(id, &sub),
            encode_ack_publish(id, 3),
        ] {
            assert!(encoded.contains(&needle), "{encoded} lacks {needle}");
            as_value(&encoded);
        }

        let nope = format!(r#"{{"op":"nope","id":{raw_id}}}"#);
        let err = parse(&nope).unwrap_err();
        assert_eq!(err.id, expected);
        let encoded = encode_error(&err);
        assert!(encoded.contains(&needle), "{encoded} lacks {needle}");
        as_value(&encoded);
    }
    for not_an_id in ["null", "true", "[1]", "{}", "nul", "", "1 2"] {
        assert!(Id::from_json(not_an_id).is_none(), "{not_an_id}");
    }
}

#[test]
fn topic_length_is_counted_in_bytes() {
    let limits = ProtocolLimits::default();
    assert_eq!(limits.max_topic_len, 256);
    let subscribe = |name: &str| {
        let text = format!(r#"{{"op":"subscribe","topics":["{name}"]}}"#);
        parse(&text).map(|r| format!("{r:?}")).map_err(|e| e.code)
    };
    let subscribed = |name: String| {
        Ok(format!("{:?}", Request::Subscribe { id: None, topics: vec![name].into(), since: Default::default() }))
    };

    let at_limit = "x".repeat(256);
    assert_eq!(subscribe(&at_limit), subscribed(at_limit.clone()));
    assert_eq!(subscribe(&"x".repeat(257)), Err(ErrorCode::BadTopic));
    // "é" is two bytes of UTF-8; written as an escape it is still two bytes once decoded.
    let accents = "é".repeat(128);
    assert_eq!(subscribe(&accents), subscribed(accents.clone()));
    assert_eq!(subscribe(&"é".repeat(129)), Err(ErrorCode::BadTopic));
    assert!(subscribe(&r"\u00e9".repeat(128)).is_ok());
    assert_eq!(subscribe(&r"\u00e9".repeat(129)), Err(ErrorCode::BadTopic));

    let mut small = ProtocolLimits::default();
    small.max_topic_len = 3;
    let text = r#"{"op":"subscribe","topics":["abc","abcd"]}"#;
    assert_eq!(parse_request(text, &small).unwrap_err().code, ErrorCode::BadTopic);
    assert!(parse_request(r#"{"op":"subscribe","topics":["abc"]}"#, &small).is_ok());
}

#[test]
fn topic_names_may_hold_any_printable_text() {
    let names = ["a b", "a/b/c", "*", "#", "user:42", r#"quote"s"#, r"back\slash", "😀", "\u{200b}", "ünïcödé"];
    for name in names {
        let text = serde_json::to_string(&json!({"op": "subscribe", "topic": name})).unwrap();
        assert_eq!(
            parse(&text),
            Ok(Request::Subscribe { id: None, topics: topics(&[name]), since: Default::default() }),
            "{text}"
        );
    }
}

#[test]
fn topic_count_is_limited_as_sent() {
    let list = |names: &[String]| serde_json::to_string(names).unwrap();
    let distinct: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();

    let at_limit = format!(r#"{{"op":"subscribe","topics":{}}}"#, list(&distinct[..64]));
    assert_eq!(
        parse(&at_limit),
        Ok(Request::Subscribe { id: None, topics: distinct[..64].to_vec().into(), since: Default::default() })
    );
    let over = format!(r#"{{"op":"subscribe","topics":{},"id":1}}"#, list(&distinct));
    let err = parse(&over).unwrap_err();
    assert_eq!((err.code, err.id), (ErrorCode::TooManyTopics, id("1")));

    // Duplicates count: 64 copies collapse to one, 65 are too many.
    let copies = vec!["same".to_owned(); 65];
    let text = format!(r#"{{"op":"subscribe","topics":{}}}"#, list(&copies[..64]));
    assert_eq!(parse(&text), Ok(Request::Subscribe { id: None, topics: topics(&["same"]), since: Default::default() }));
    let text = format!(r#"{{"op":"subscribe","topics":{}}}"#, list(&copies));
    assert_eq!(parse(&text).unwrap_err().code, ErrorCode::TooManyTopics);

    // The limit is checked before later entries are read: junk after it is not reported.
    let text =
        format!(r#"{{"op":"subscribe","topics":{},"id":2}}"#, list(&distinct[..64]).replace(']', r#","",7,[]]"#));
    assert_eq!(parse(&text).unwrap_err().code, ErrorCode::TooManyTopics);

    let mut two = ProtocolLimits::default();
    two.max_topics_per_request = 2;
    assert!(parse_request(r#"{"op":"publish","topics":["a","b"],"data":1}"#, &two).is_ok());
    let err = parse_request(r#"{"op":"publish","topics":["a","b","c"],"data":1}"#, &two).unwrap_err();
    assert_eq!(err.code, ErrorCode::TooManyTopics);

    let mut none = ProtocolLimits::default();
    none.max_topics_per_request = 0;
    for text in [r#"{"op":"subscribe","topic":"a"}"#, r#"{"op":"subscribe","topics":["a"]}"#] {
        assert_eq!(parse_request(text, &none).unwrap_err().code, ErrorCode::TooManyTopics, "{text}");
    }
    assert_eq!(parse_request(r#"{"op":"ping"}"#, &none), Ok(Request::Ping { id: None }));
}

#[test]
fn first_problem_in_a_topic_list_is_reported() {
    let err = parse(r#"{"op":"subscribe","topics":["", 1]}"#).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadTopic);
    let err = parse(r#"{"op":"subscribe","topics":["ok", "", "x"],"id":1}"#).unwrap_err();
    assert_eq!((err.code, err.id), (ErrorCode::BadTopic, id("1")));
}

#[test]
fn encoded_messages_read_back_as_json() {
    let sub = topics(&["a", "b"]);
    assert_eq!(
        as_value(&encode_ack_subscribe(id("7"), &sub)),
        json!({"type": "ack", "op": "subscribe", "id": 7, "topics": ["a", "b"]})
    );
    assert_eq!(encode_ack_subscribe(id("7"), &sub), r#"{"type":"ack","op":"subscribe","id":7,"topics":["a","b"]}"#);
    assert_eq!(
        as_value(&encode_ack_unsubscribe(id(r#""u""#), &topics(&["a"]))),
        json!({"type": "ack", "op": "unsubscribe", "id": "u", "topics": ["a"]})
    );
    assert_eq!(
        as_value(&encode_ack_publish(id("9"), 12)),
        json!({"type": "ack", "op": "publish", "id": 9, "recipients": 12})
    );
    assert_eq!(as_value(&encode_ack_ping(id("10"))), json!({"type": "ack", "op": "ping", "id": 10}));

    // Without an id, the field is left out.
    assert_eq!(as_value(&encode_ack_ping(None)), json!({"type": "ack", "op": "ping"}));
    assert_eq!(as_value(&encode_ack_publish(None, 0)), json!({"type": "ack", "op": "publish", "recipients": 0}));
    assert_eq!(
        as_value(&encode_ack_subscribe(None, &sub)),
        json!({"type": "ack", "op": "subscribe", "topics": ["a", "b"]})
    );

    assert_eq!(
        as_value(&encode_delivery("a", r#"{"x": [1, 2]}"#)),
        json!({"type": "message", "topic": "a", "data": {"x": [1, 2]}})
    );

    let err = parse(r#"{"op":"publish","topic":"a","id":9}"#).unwrap_err();
    let encoded = as_value(&encode_error(&err));
    assert_eq!(encoded["type"], "error");
    assert_eq!(encoded["id"], 9);
    assert_eq!(encoded["code"], "missing_data");
    assert_eq!(encoded["message"], &*err.message);
    assert_eq!(encoded.as_object().map(|o| o.len()), Some(4));
    let encoded = as_value(&encode_error(&not_text_error()));
    assert!(encoded.get("id").is_none());
}

#[test]
fn topic_names_are_escaped_in_encoded_messages() {
    let awkward = ["quote\"d", r"back\slash", "new\nline", "\u{0}nul", "\u{7f}", "😀", "</script>", "\u{2028}"];
    for name in awkward {
        let delivery = as_value(&encode_delivery(name, "1"));
        assert_eq!(delivery, json!({"type": "message", "topic": name, "data": 1}), "{name:?}");
        let ack = as_value(&encode_ack_subscribe(None, &vec![name.to_owned()].into()));
        assert_eq!(ack["topics"], json!([name]));
    }
    let err = RequestError::new(ErrorCode::BadTopic, "a \"message\" \\ with\ncontrol \u{1} characters");
    assert_eq!(as_value(&encode_error(&err))["message"], &*err.message);
}

#[test]
fn request_errors_display_code_and_message() {
    let err = RequestError::new(ErrorCode::MissingData, "a publish needs `data`").with_id(id("3"));
    assert_eq!(err.to_string(), "missing_data: a publish needs `data`");
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.to_string().starts_with("missing_data"));
}

fn json_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just(r#""op""#.to_owned()),
        Just(r#""id""#.to_owned()),
        Just(r#""topics""#.to_owned()),
        Just(r#""topic""#.to_owned()),
        Just(r#""data""#.to_owned()),
        Just(r#""exclude_self""#.to_owned()),
        Just(r#""subscribe""#.to_owned()),
        Just(r#""unsubscribe""#.to_owned()),
        Just(r#""publish""#.to_owned()),
        Just(r#""ping""#.to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("12345678901234567890".to_owned()),
        Just(r#""\u0000""#.to_owned()),
        Just(r#""\ud800""#.to_owned()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        any::<String>(),
    ]
}

/// A parse that never panics, and whose error (if any) encodes to JSON with its code and id.
fn check_no_panic(text: &str) -> Result<(), TestCaseError> {
    match parse_request(text, &ProtocolLimits::default()) {
        Ok(request) => {
            if let Request::Publish { data, topics, .. } = &request {
                prop_assert!(serde_json::from_str::<Value>(data.get()).is_ok());
                let first = topics.iter().next().unwrap_or_default();
                let delivery: Value = serde_json::from_str(&encode_delivery(first, data.get()))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&delivery["topic"], first);
            }
        }
        Err(err) => {
            let encoded: Value =
                serde_json::from_str(&encode_error(&err)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&encoded["type"], "error");
            prop_assert_eq!(&encoded["code"], err.code.as_str());
            if let Some(id) = &err.id {
                let expected: Value =
                    serde_json::from_str(id.as_json()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&encoded["id"], &expected);
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_no_panic(&text)?;
    }

    #[test]
    fn json_like_text_never_panics(parts in proptest::collection::vec(json_fragment(), 0..24)) {
        check_no_panic(&parts.concat())?;
        check_no_panic(&format!(r#"{{"op":"publish","id":1,{}}}"#, parts.concat()))?;
    }

    #[test]
    fn generated_requests_parse_to_what_was_sent(
        names in proptest::collection::vec("[^\\p{Cc}]{1,20}", 1..10),
        number in any::<i64>(),
        exclude_self in any::<bool>(),
    ) {
        let text = serde_json::to_string(&json!({
            "op": "publish", "topics": names, "data": {"n": number, "names": names},
            "exclude_self": exclude_self, "id": number,
        })).unwrap();
        let mut expected: Vec<String> = Vec::new();
        for name in &names {
            if !expected.contains(name) {
                expected.push(name.clone());
            }
        }
        let request = parse_request(&text, &ProtocolLimits::default());
        prop_assert!(request.is_ok(), "{:?}", request);
        if let Ok(Request::Publish { id, topics, data, exclude_self: excluded }) = request {
            prop_assert_eq!(topics.iter().collect::<Vec<_>>(), expected.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(excluded, exclude_self);
            let number_text = number.to_string();
            prop_assert_eq!(id.as_ref().map(Id::as_json), Some(number_text.as_str()));
            let ack: Value = serde_json::from_str(&encode_ack_subscribe(id, &topics)).unwrap();
            prop_assert_eq!(&ack["topics"], &json!(expected));
            let delivery: Value = serde_json::from_str(&encode_delivery(&expected[0], data.get())).unwrap();
            prop_assert_eq!(&delivery["data"], &json!({"n": number, "names": names}));
        }
    }
}
